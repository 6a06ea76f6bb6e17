/** visual_tokenizer.onnx on raw patches: codes in range, one row per 28×28 px, sensitive to content. */
import t from 'tap'
import { loadModel, type KelixModel } from '../../src/engine/model.js'
import { f32, i64 } from '../helpers/tensors.js'
import { tinyModelDir } from '../helpers/tiny-model.js'

/** Deterministic synthetic patches for an image of `height`×`width` px. */
function patches(height: number, width: number, phase: number): Float32Array {
  const count = (height / 14) * (width / 14) * 588
  return Float32Array.from({ length: count }, (_, i) => Math.sin(i * 0.013 + phase))
}

async function codes(model: KelixModel, height: number, width: number, phase: number) {
  const out = await model.visualTokenizer.run({
    pixel_patches: f32(patches(height, width, phase), [(height / 14) * (width / 14), 588]),
    grid_hw: i64([height / 14, width / 14], [2]),
  })
  const tensor = out.codes as import('onnxruntime-node').Tensor
  return { dims: tensor.dims, values: Array.from(tensor.data as BigInt64Array, Number) }
}

t.test('an H×W image gives (H/28)·(W/28) positions of 8 codes, each within its sub-codebook', async (t) => {
  const model = await loadModel(await tinyModelDir())
  t.teardown(() => model.dispose())
  for (const [h, w] of [
    [224, 224],
    [112, 336],
    [56, 28],
    [448, 448],
  ] as const) {
    const { dims, values } = await codes(model, h, w, 0)
    t.same(dims, [(h / 28) * (w / 28), 8], `${h}×${w}`)
    t.ok(
      values.every((v) => Number.isInteger(v) && v >= 0 && v < 512),
      `${h}×${w} codes in 0..511`,
    )
  }
})

t.test('identical images give identical codes and different images different codes', async (t) => {
  const model = await loadModel(await tinyModelDir())
  t.teardown(() => model.dispose())
  const a = await codes(model, 224, 224, 0)
  const b = await codes(model, 224, 224, 0)
  const c = await codes(model, 224, 224, 1)
  t.same(a.values, b.values)
  const differing = a.values.filter((v, i) => v !== c.values[i]).length
  t.ok(differing > a.values.length / 2, `${differing} of ${a.values.length} codes differ`)
  t.ok(new Set(a.values).size > 64, 'codes are not constant')
})
