/** dit.onnx and vae_decoder.onnx of the tiny model: declared interface and the properties the sampler relies on. */
import ort from 'onnxruntime-node'
import t from 'tap'
import { padCondition } from '../../../src/engine/image-gen/index.js'
import { loadModel, type ImageDecoder } from '../../../src/engine/model.js'
import { maxAbsDiff, spanHidden } from '../../helpers/image-gen.js'
import { tinyModelDir } from '../../helpers/tiny-model.js'

const shapes = (meta: readonly ort.InferenceSession.ValueMetadata[]) =>
  meta.map((m) => (m.isTensor ? `${m.name}:${m.type}[${m.shape.join(',')}]` : m.name))

const loaded = await loadModel(await tinyModelDir(), { intraOpThreads: 1 })
t.teardown(() => loaded.dispose())
const model = loaded.imageDecoder as ImageDecoder
const config = model.config

const LATENTS = 8 * 8 * 8

async function velocity(
  latents: Float32Array,
  sigma: number,
  span: Float32Array,
  padding = 0,
  unconditional = false,
): Promise<Float32Array> {
  const { condition, mask } = padCondition(config, span)
  condition.fill(padding, span.length)
  const feeds = {
    latents: new ort.Tensor('float32', latents, [1, 8, 8, 8]),
    timestep: new ort.Tensor('float32', Float32Array.of(sigma), [1]),
    condition: new ort.Tensor('float32', condition, [1, 96, 256]),
    condition_mask: new ort.Tensor('int64', BigInt64Array.from(Array.from(mask, BigInt)), [1, 96]),
    unconditional: new ort.Tensor('bool', Uint8Array.of(unconditional ? 1 : 0), [1]),
  }
  return (await model.dit.run(feeds)).velocity?.data as Float32Array
}

t.test('the config carries the documented image_generation section', async (t) => {
  t.same(config.image_generation, {
    grid: 6,
    condition_length: 96,
    latent_channels: 8,
    latent_size: 8,
    image_size: 64,
    steps: 8,
    shift: 3,
    guidance: 1,
    dit: { hidden_size: 64, num_layers: 2, num_heads: 4, patch_size: 1, intermediate_size: 160 },
  })
})

t.test('dit.onnx and vae_decoder.onnx declare the names, types and shapes of the format', async (t) => {
  t.same(shapes(model.dit.inputMetadata), [
    'latents:float32[batch,8,8,8]',
    'timestep:float32[batch]',
    'condition:float32[batch,96,256]',
    'condition_mask:int64[batch,96]',
    'unconditional:bool[batch]',
  ])
  t.same(shapes(model.dit.outputMetadata), ['velocity:float32[batch,8,8,8]'])
  t.same(shapes(model.vaeDecoder.inputMetadata), ['latents:float32[batch,8,8,8]'])
  t.same(shapes(model.vaeDecoder.outputMetadata), ['image:float32[batch,3,64,64]'])
})

t.test('the velocity is finite and depends on the latents, the timestep and the condition', async (t) => {
  const latents = Float32Array.from({ length: LATENTS }, (_, i) => Math.sin(i * 1.3))
  const span = spanHidden(config, 60, 0)
  const base = await velocity(latents, 1, span)
  t.ok(base.every(Number.isFinite), 'finite')
  t.ok(
    maxAbsDiff(
      base,
      await velocity(
        latents.map((v) => -v),
        1,
        span,
      ),
    ) > 0.1,
    'latents matter',
  )
  t.ok(maxAbsDiff(base, await velocity(latents, 0.5, span)) > 0.1, 'the timestep matters')
  t.ok(maxAbsDiff(base, await velocity(latents, 1, spanHidden(config, 60, 1))) > 0.1, 'the condition matters')
})

t.test('the null caption (guidance) ignores the condition and differs from it', async (t) => {
  const latents = Float32Array.from({ length: LATENTS }, (_, i) => Math.sin(i * 0.9))
  const nullA = await velocity(latents, 0.6, spanHidden(config, 60, 3), 0, true)
  const nullB = await velocity(latents, 0.6, spanHidden(config, 20, 4), 0, true)
  t.equal(maxAbsDiff(nullA, nullB), 0, 'the condition and its mask are ignored')
  t.ok(
    maxAbsDiff(nullA, await velocity(latents, 0.6, spanHidden(config, 60, 3))) > 0.01,
    'unlike the conditional velocity',
  )
})

t.test('masked condition positions do not change the velocity', async (t) => {
  const latents = Float32Array.from({ length: LATENTS }, (_, i) => Math.cos(i * 0.7))
  const span = spanHidden(config, 60, 2)
  t.equal(maxAbsDiff(await velocity(latents, 0.75, span, 0), await velocity(latents, 0.75, span, 5)), 0)
})

t.test(
  'the decoded image is finite, mostly inside [-1, 1] (DC-AE does not clamp) and depends on the latents',
  async (t) => {
    const decode = async (latents: Float32Array) =>
      (await model.vaeDecoder.run({ latents: new ort.Tensor('float32', latents, [1, 8, 8, 8]) })).image
        ?.data as Float32Array
    const a = await decode(Float32Array.from({ length: LATENTS }, (_, i) => Math.sin(i)))
    const b = await decode(Float32Array.from({ length: LATENTS }, (_, i) => Math.cos(i)))
    t.equal(a.length, 3 * 64 * 64)
    t.ok(a.every(Number.isFinite), 'finite')
    const inside = a.filter((v) => v > -1 && v < 1).length / a.length
    t.ok(inside > 0.5, `${(inside * 100).toFixed(0)}% inside (-1, 1): not a saturated image`)
    t.ok(maxAbsDiff(a, b) > 0.1, 'latents matter')
  },
)
