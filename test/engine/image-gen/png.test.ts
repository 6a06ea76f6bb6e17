/** From condition to PNG on the tiny model: determinism per seed and the configured size. */
import sharp from 'sharp'
import t from 'tap'
import {
  decodeImage,
  decodeImages,
  DenoiseJob,
  denoiseStepBatched,
  encodePng,
  toRgb,
} from '../../../src/engine/image-gen/index.js'
import { loadModel, type ImageDecoder } from '../../../src/engine/model.js'
import { spanHidden } from '../../helpers/image-gen.js'
import { tinyModelDir } from '../../helpers/tiny-model.js'

const loaded = await loadModel(await tinyModelDir(), { intraOpThreads: 1 })
t.teardown(() => loaded.dispose())
const model = loaded.imageDecoder as ImageDecoder
const config = model.config

async function png(span: Float32Array, seed: number): Promise<Uint8Array> {
  const job = DenoiseJob.fromSpan(model, span, seed)
  while (!(await job.step()));
  return encodePng(await decodeImage(model, job.latents), config.image_generation.image_size)
}

t.test('the same condition and seed give a byte-identical PNG', async (t) => {
  const span = spanHidden(config, 68, 0.25)
  t.same(Buffer.from(await png(span, 5)), Buffer.from(await png(span, 5)))
})

t.test('different seeds give different PNGs', async (t) => {
  const span = spanHidden(config, 68, 0.25)
  t.not(Buffer.from(await png(span, 5)).toString('hex'), Buffer.from(await png(span, 6)).toString('hex'))
})

t.test('the PNG decodes to image_size × image_size RGB', async (t) => {
  const bytes = await png(spanHidden(config, 68, 0.75), 9)
  const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true })
  t.same(
    { format: 'png', width: info.width, height: info.height, channels: info.channels },
    { format: 'png', width: 64, height: 64, channels: 3 },
  )
  t.equal(data.length, 64 * 64 * 3)
  t.ok(new Set(data).size > 16, 'not a flat image')
})

t.test('decoding a batch gives the images decoded one by one', async (t) => {
  const jobs = [
    DenoiseJob.fromSpan(model, spanHidden(config, 68, 0), 1),
    DenoiseJob.fromSpan(model, spanHidden(config, 68, 1), 2),
  ]
  while (jobs.some((j) => !j.done)) await denoiseStepBatched(model, jobs)
  const batch = await decodeImages(
    model,
    jobs.map((j) => j.latents),
  )
  const single = [
    await decodeImage(model, jobs[0]?.latents as Float32Array),
    await decodeImage(model, jobs[1]?.latents as Float32Array),
  ]
  t.equal(batch.length, 2)
  const differing = batch.map((rgb, b) =>
    rgb.reduce((n, v, i) => n + (Math.abs(v - (single[b]?.[i] as number)) > 1 ? 1 : 0), 0),
  )
  t.same(differing, [0, 0], 'equal up to rounding at a half')
})

t.test('pixels map from [-1, 1] to 0…255, clamped, interleaved', async (t) => {
  const planes = Float32Array.of(-1, 1, 0, 2, -2, 0.5, 1, -1, 0.001, 0, 0, 0)
  t.same(Array.from(toRgb(planes, 2)), [0, 0, 128, 255, 191, 128, 128, 255, 128, 255, 0, 128])
})

t.test('encodePng refuses a buffer of the wrong size', async (t) => {
  await t.rejects(encodePng(new Uint8Array(10), 64), /10 bytes are not a 64×64 RGB image/)
})
