import type ort from 'onnxruntime-node'
import t from 'tap'
import { loadModel } from '../../src/engine/model.js'
import { tinyModelDir } from '../helpers/tiny-model.js'

const shapes = (meta: readonly ort.InferenceSession.ValueMetadata[]) =>
  meta.map((m) => (m.isTensor ? `${m.name}:${m.type}[${m.shape.join(',')}]` : m.name))

t.test('every graph loads and declares the names, types and shapes of the format', async (t) => {
  const model = await loadModel(await tinyModelDir())
  t.teardown(() => model.dispose())
  t.equal(model.config.name, 'kelix-tiny')
  t.equal(model.decoderHasDelta, true)

  t.same(shapes(model.visualTokenizer.inputMetadata), ['pixel_patches:float32[patches,588]', 'grid_hw:int64[2]'])
  t.same(shapes(model.visualTokenizer.outputMetadata), ['codes:int64[positions,8]'])

  t.equal(model.blockDecoderHasParts, true)
  t.same(shapes(model.blockDecoder.inputMetadata), [
    'hidden_state:float32[batch,256]',
    'block_ids:int64[batch,slots]',
    'vocab_part:int64[]',
  ])
  // The graph declares the width symbolic; every part of the tiny model has 512 ids, so ONNX Runtime infers 512.
  t.same(shapes(model.blockDecoder.outputMetadata), ['logits:float32[batch,512]'])

  const layers = [0, 1, 2, 3]
  const kv = (prefix: string, length: string) =>
    layers.flatMap((i) => ['key', 'value'].map((p) => `${prefix}.${i}.${p}:float32[batch,2,${length},64]`))
  t.same(shapes(model.decoder.inputMetadata), [
    'block_ids:int64[batch,seq,9]',
    'attention_mask:int64[batch,total]',
    'position_ids:int64[batch,seq]',
    ...kv('past_key_values', 'past'),
  ])
  const outputs = shapes(model.decoder.outputMetadata)
  t.same([...outputs].sort(), ['hidden_states:float32[batch,seq,256]', ...kv('present_delta', 'seq')].sort())
})

t.test('dispose is idempotent', async (t) => {
  const model = await loadModel(await tinyModelDir())
  await model.dispose()
  await model.dispose()
  t.pass('disposed twice without error')
})
