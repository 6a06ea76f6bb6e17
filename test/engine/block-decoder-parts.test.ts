/** block_decoder.onnx's `vocab_part`: each part's logits are exactly that slice of the whole-vocabulary LM head. */
import ort from 'onnxruntime-node'
import t from 'tap'
import { join } from 'node:path'
import { TINY_CONFIG } from '../../src/builder/tiny.js'
import { codebookPart, TEXT_PART, vocabPartRange } from '../../src/engine/vocab-parts.js'
import { loadModel } from '../../src/engine/model.js'
import { olderBlockDecoderModelDir, tinyModelDir } from '../helpers/tiny-model.js'

const config = TINY_CONFIG
const hidden = config.llm.hidden_size
const vocab = config.vocab.vocab_size
const parts = [TEXT_PART, ...Array.from({ length: config.vocab.num_codebooks }, (_, k) => codebookPart(k))]

/** A batch of `batch` rows at `slot`: varied hidden states, and ids already chosen from each slot's sub-codebook. */
function feeds(batch: number, slot: number): Record<string, ort.Tensor> {
  const states = Float32Array.from(
    { length: batch * hidden },
    (_, i) => 2 * Math.sin(0.37 * i) + Math.cos(0.011 * i * (1 + slot)),
  )
  const ids = BigInt64Array.from({ length: batch * slot }, (_, i) =>
    BigInt(vocabPartRange(config, codebookPart(i % slot))[0] + ((i * 37) % config.vocab.codebook_size)),
  )
  return {
    hidden_state: new ort.Tensor('float32', states, [batch, hidden]),
    block_ids: new ort.Tensor('int64', ids, [batch, slot]),
  }
}

const partInput = (part: number) => new ort.Tensor('int64', BigInt64Array.of(BigInt(part)), [])

t.test('the logits of every part equal that part of the whole-vocabulary logits, bit for bit', async (t) => {
  const model = await loadModel(await tinyModelDir(), { intraOpThreads: 1 })
  t.teardown(() => model.dispose())
  t.equal(model.blockDecoderHasParts, true)
  const whole = await ort.InferenceSession.create(join(await olderBlockDecoderModelDir(t), 'block_decoder.onnx'), {
    intraOpNumThreads: 1,
  })
  t.teardown(() => whole.release())
  t.notOk(whole.inputNames.includes('vocab_part'), 'the older form has no vocab_part')
  for (const [batch, slot] of [
    [1, 0],
    [3, 0],
    [3, 4],
    [5, 8],
  ] as const) {
    const expected = (await whole.run(feeds(batch, slot))).logits as ort.Tensor
    t.same(expected.dims, [batch, vocab])
    const full = expected.data as Float32Array
    for (const part of parts) {
      const [lo, hi] = vocabPartRange(config, part)
      const logits = (await model.blockDecoder.run({ ...feeds(batch, slot), vocab_part: partInput(part) }))
        .logits as ort.Tensor
      t.same(logits.dims, [batch, hi - lo], `part ${part}: ${hi - lo} logits per row`)
      const got = logits.data as Float32Array
      let differing = 0
      for (let b = 0; b < batch; b++)
        for (let i = 0; i < hi - lo; i++) if (got[b * (hi - lo) + i] !== full[b * vocab + lo + i]) differing++
      t.equal(differing, 0, `batch ${batch}, slot ${slot}, part ${part}: ids [${lo}, ${hi}) identical`)
    }
  }
})
