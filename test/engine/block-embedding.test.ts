/**
 * Block embedding inside decoder.onnx: the sum of the embedding rows of the
 * ids before the first <eob>. The test exposes the graph's own embedding node
 * as an extra output and compares it with rows read from the weights.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import t, { type Test } from 'tap'
import { parseConfig } from '../../src/engine/model-config.js'
import { externalWeight, probeSession, readGraph } from '../helpers/onnx-files.js'
import { i64, maxAbsDiff } from '../helpers/tensors.js'
import { tinyModelDir } from '../helpers/tiny-model.js'

async function embeddingProbe(t: Test, dir: string) {
  const sum = (await readGraph(dir, 'decoder.onnx')).graph?.node?.find((n) => n.opType === 'ReduceSum')
  const output = sum?.output?.[0]
  if (output == null) throw new Error('decoder.onnx has no block-embedding ReduceSum')
  const rows = await externalWeight(dir, 'decoder.onnx', 'model.model.tok_embeddings.embed_tokens.weight')
  return { session: await probeSession(t, dir, 'decoder.onnx', [output]), rows, output }
}

t.test('a text block embeds as its token row alone and an image block as the sum of its 8 rows', async (t) => {
  const dir = await tinyModelDir()
  const config = parseConfig(await readFile(join(dir, 'config.json'), 'utf8'))
  const { session, rows, output } = await embeddingProbe(t, dir)
  const H = config.llm.hidden_size
  const eob = config.special_tokens.eob
  const { visual_id_offset: offset, codebook_size: size } = config.vocab
  const codes = [3, 500, 17, 256, 0, 511, 42, 99].map((c, k) => offset + k * size + c)
  const blocks = [
    [65, ...Array(8).fill(eob)],
    [65, eob, 7, 8, 9, 10, 11, 12, 13], // ids after the first <eob> are ignored
    [...codes, eob],
  ]
  const past = Object.fromEntries(
    [0, 1, 2, 3].flatMap((i) =>
      ['key', 'value'].map((p) => [
        `past_key_values.${i}.${p}`,
        new ort.Tensor('float32', new Float32Array(0), [1, 2, 0, 64]),
      ]),
    ),
  )
  const out = await session.run({
    ...past,
    block_ids: i64(blocks.flat(), [1, 3, 9]),
    attention_mask: i64([1, 1, 1], [1, 3]),
    position_ids: i64([0, 1, 2], [1, 3]),
  })
  const embedded = (out[output] as ort.Tensor).data as Float32Array
  t.same((out[output] as ort.Tensor).dims, [1, 3, H])
  const row = (id: number) => rows.subarray(id * H, (id + 1) * H)
  t.equal(maxAbsDiff(embedded.subarray(0, H), row(65)), 0, 'text block = its row')
  t.equal(maxAbsDiff(embedded.subarray(H, 2 * H), row(65)), 0, 'ids after <eob> do not count')
  const sum = new Float32Array(H)
  for (const id of codes) row(id).forEach((v, i) => (sum[i] = (sum[i] as number) + v))
  t.ok(maxAbsDiff(embedded.subarray(2 * H, 3 * H), sum) < 1e-5, 'image block = sum of its 8 rows')
  t.ok(maxAbsDiff(embedded.subarray(2 * H, 3 * H), row(codes[0] as number)) > 0.1, 'and not just its first row')
})
