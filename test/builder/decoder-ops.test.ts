/**
 * decoder.onnx with ONNX Runtime's fused kernels (SkipSimplifiedLayerNormalization,
 * RotaryEmbedding) against the portable graph of standard operators: the same
 * hidden states and cache deltas for a decode step and a prefill chunk over a
 * padded cache, at float32 (the same arithmetic, to rounding), and the fused
 * graph really holds the fused kernels.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import onnxProto from 'onnx-proto'
import ort from 'onnxruntime-node'
import t from 'tap'
import { buildDecoder, embeddingTable, type DecoderOps } from '../../src/builder/decoder.js'
import { GraphBuilder } from '../../src/builder/graph.js'
import { TINY_CONFIG } from '../../src/builder/tiny.js'
import { inMemory, type TensorData } from '../../src/builder/tensor-data.js'
import { SeededWeights, type CheckpointWeights } from '../../src/builder/weights.js'
import type { Architecture } from '../../src/builder/architecture.js'
import { maxAbsDiff } from '../helpers/tensors.js'

const config = { ...TINY_CONFIG, llm: { ...TINY_CONFIG.llm, num_layers: 2, max_position_embeddings: 64 } }
const arch = { config, llmIntermediateSize: 512 } as unknown as Architecture
const { num_layers: layers, num_key_value_heads: kvHeads, head_dim: headDim } = config.llm

const dir = await mkdtemp(join(tmpdir(), 'kelix-decoder-ops-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
const seeded = new SeededWeights(7)
const random = (key: string, dims: readonly number[], std = 0.05): TensorData =>
  inMemory(
    dims,
    seeded.random(
      key,
      dims.reduce((a, b) => a * b, 1),
      std,
    ),
  )
const weights: CheckpointWeights = {
  linear: (key, inDim, outDim) => random(key, [inDim, outDim]),
  storedLinear: (key, inDim, outDim) => random(key, [outDim, inDim]),
  bias: (key, dim) => random(key, [dim]),
  scale: (key, dim) => inMemory([dim], seeded.around(key, dim, 1, 0.1)),
  tensor: (key, shape) => random(key, shape, 0.5),
  rows: (key, shape, lo, hi) => random(key, [hi - lo, ...shape.slice(1)]),
  transposed: () => {
    throw new Error('the decoder reads no transposed tensor')
  },
}
const table = embeddingTable(weights, config, 'fp32')
await table.save(join(dir, table.file))
const sessions = new Map<DecoderOps, ort.InferenceSession>()
const opTypes = new Map<DecoderOps, string[]>()
for (const ops of ['portable', 'fused'] as const) {
  const graph = buildDecoder({ g: new GraphBuilder('decoder'), w: weights }, arch, table, 'delta', undefined, ops)
  await graph.save(join(dir, `${ops}.onnx`))
  const model = onnxProto.onnx.ModelProto.decode(await readFile(join(dir, `${ops}.onnx`)))
  opTypes.set(
    ops,
    (model.graph?.node ?? []).map((n) => n.opType ?? ''),
  )
  sessions.set(ops, await ort.InferenceSession.create(join(dir, `${ops}.onnx`)))
}
t.teardown(async () => {
  for (const s of sessions.values()) await s.release()
})

/** `seq` new blocks for each of 2 rows after a cache of `past` slots, the first slot of row 1 padding. */
function feeds(seq: number, past: number): Record<string, ort.Tensor> {
  const batch = 2
  const ids = BigInt64Array.from({ length: batch * seq * config.block_size }, (_, i) => BigInt((i * 37) % 200))
  const mask = BigInt64Array.from({ length: batch * (past + seq) }, (_, i) => (i === past + seq ? 0n : 1n))
  const positions = BigInt64Array.from({ length: batch * seq }, (_, i) => BigInt(past + (i % seq) - (i >= seq ? 1 : 0)))
  const f: Record<string, ort.Tensor> = {
    block_ids: new ort.Tensor('int64', ids, [batch, seq, config.block_size]),
    attention_mask: new ort.Tensor('int64', mask, [batch, past + seq]),
    position_ids: new ort.Tensor('int64', positions, [batch, seq]),
  }
  for (let i = 0; i < layers; i++) {
    for (const kind of ['key', 'value']) {
      f[`past_key_values.${i}.${kind}`] = new ort.Tensor(
        'float32',
        Float32Array.from({ length: batch * kvHeads * past * headDim }, (_, j) => Math.sin(j * 0.37 + i) * 0.5),
        [batch, kvHeads, past, headDim],
      )
    }
  }
  return f
}

for (const [seq, past] of [
  [1, 5],
  [3, 4],
] as const) {
  t.test(`${seq} new block(s) after ${past} cached: fused equals portable to float32 rounding`, async (t) => {
    const f = feeds(seq, past)
    const portable = await sessions.get('portable')!.run(f)
    const fused = await sessions.get('fused')!.run(f)
    t.same(Object.keys(fused).sort(), Object.keys(portable).sort())
    for (const name of Object.keys(portable)) {
      t.same(fused[name]!.dims, portable[name]!.dims, `${name} shape`)
      t.ok(
        maxAbsDiff(fused[name]!.data as Float32Array, portable[name]!.data as Float32Array) < 1e-5,
        `${name} within 1e-5`,
      )
    }
  })
}

t.test('the fused graph holds the fused kernels, the portable one standard operators only', async (t) => {
  const count = (ops: DecoderOps, type: string) => opTypes.get(ops)!.filter((o) => o === type).length
  t.equal(
    count('fused', 'SkipSimplifiedLayerNormalization'),
    2 * layers - 1,
    'every residual Add followed by an RMSNorm',
  )
  t.equal(count('fused', 'RotaryEmbedding'), 2 * layers, 'queries and keys of each layer')
  t.equal(count('portable', 'SkipSimplifiedLayerNormalization') + count('portable', 'RotaryEmbedding'), 0)
})
