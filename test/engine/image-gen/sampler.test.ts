/** The flow-matching sampler: schedule, seeded noise, stepping, and batch invariance over dit.onnx. */
import t from 'tap'
import {
  denoise,
  DenoiseJob,
  denoiseStepBatched,
  gaussianNoise,
  imageSpanLength,
  padCondition,
  shiftSigma,
  sigmaSchedule,
} from '../../../src/engine/image-gen/index.js'
import { loadModel, type ImageDecoder } from '../../../src/engine/model.js'
import { TextTokenizer } from '../../../src/engine/text/tokenizer.js'
import { maxAbsDiff, spanHidden } from '../../helpers/image-gen.js'
import { tinyModelDir } from '../../helpers/tiny-model.js'

const loaded = await loadModel(await tinyModelDir(), { intraOpThreads: 1 })
t.teardown(() => loaded.dispose())
const model = loaded.imageDecoder as ImageDecoder
const config = model.config

t.test('the shifted schedule runs from 1 to 0 and spends more steps at high noise', async (t) => {
  t.same(Array.from(sigmaSchedule(4, 1)), [1, 0.75, 0.5, 0.25, 0])
  const shifted = sigmaSchedule(8, 3)
  t.equal(shifted.length, 9)
  t.equal(shifted[0], 1)
  t.equal(shifted[4], 0.75)
  t.equal(shifted[8], 0)
  t.equal(shiftSigma(0.25, 3), 0.5)
  t.throws(() => sigmaSchedule(0, 3), RangeError)
})

t.test("the schedule is the reference scheduler's, bit for bit in float32", async (t) => {
  // diffusers' FlowMatchEulerDiscreteScheduler(shift=3).set_timesteps(N, sigmas=linspace(1, 1/N, N)), from dit/reference.json.
  const expected: Record<number, number[]> = {
    4: [1.0, 0.9, 0.75, 0.5, 0.0],
    5: [1.0, 0.923077, 0.8181818, 0.6666667, 0.42857146, 0.0],
  }
  for (const [steps, sigmas] of Object.entries(expected))
    t.same(Array.from(sigmaSchedule(Number(steps), 3)), sigmas.map(Math.fround), `${steps} steps`)
  // The DiT truncates float32(σ')·1000: 0.42857146·1000 is 428.57147 in float32, timestep 428.
  t.equal(Math.floor(Math.fround((sigmaSchedule(5, 3)[4] as number) * 1000)), 428)
})

t.test('seeded noise repeats for a seed, differs across seeds and is standard normal', async (t) => {
  const a = gaussianNoise(7, 20_001)
  t.same(a, gaussianNoise(7, 20_001))
  t.not(a[0], gaussianNoise(8, 20_001)[0])
  const mean = a.reduce((s, v) => s + v, 0) / a.length
  const variance = a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length
  t.ok(Math.abs(mean) < 0.03, `mean ${mean}`)
  t.ok(Math.abs(variance - 1) < 0.03, `variance ${variance}`)
  t.ok(a.every(Number.isFinite))
})

t.test('the span of a full tiny grid fits condition_length', async (t) => {
  const tokenizer = new TextTokenizer(loaded.tokenizer, config)
  const length = imageSpanLength(config, config.image_generation.grid, (text) => tokenizer.encodeOrdinary(text))
  t.same(tokenizer.encodeOrdinary('0,6'), [48, 44, 54], 'one id per character')
  t.equal(length, 1 + 6 * (5 + 6) + 1)
  t.ok(length <= config.image_generation.condition_length)
})

t.test('padCondition pads with zeros and masks the padding', async (t) => {
  const { condition, mask } = padCondition(config, spanHidden(config, 3, 0))
  t.equal(condition.length, 96 * 256)
  t.same(Array.from(mask).slice(0, 5), [1, 1, 1, 0, 0])
  t.equal(
    Array.from(mask).reduce((s, m) => s + m, 0),
    3,
  )
  t.ok(condition.subarray(3 * 256).every((v) => v === 0))
  t.throws(() => padCondition(config, new Float32Array(97 * 256)), /97 positions, more than condition_length 96/)
  t.throws(() => padCondition(config, new Float32Array(100)), /not whole rows of hidden size 256/)
})

t.test('a job stepped one step at a time equals the full loop', async (t) => {
  const span = spanHidden(config, 68, 0.5)
  const job = DenoiseJob.fromSpan(model, span, 42)
  t.equal(job.steps, 8)
  t.equal(job.sigma, 1)
  const seen: number[] = []
  while (!(await job.step())) seen.push(job.stepIndex)
  t.same(seen, [1, 2, 3, 4, 5, 6, 7])
  t.equal(job.stepIndex, 8)
  t.equal(job.sigma, 0)
  t.ok(job.latents.every(Number.isFinite))

  const { condition, mask } = padCondition(config, span)
  const whole = await denoise(model, condition, mask, [42])
  t.same(whole, job.latents)
  await t.rejects(job.step(), /already done/)
})

t.test('batching jobs at different steps in one dit call gives the latents each gets alone', async (t) => {
  const spans = [spanHidden(config, 68, 0), spanHidden(config, 40, 1)]
  const alone = []
  for (const [i, span] of spans.entries()) {
    const job = DenoiseJob.fromSpan(model, span, 100 + i)
    while (!(await job.step()));
    alone.push(job.latents)
  }
  const jobs = spans.map((span, i) => DenoiseJob.fromSpan(model, span, 100 + i))
  for (let k = 0; k < 3; k++) await jobs[0]?.step()
  while (jobs.some((j) => !j.done))
    await denoiseStepBatched(
      model,
      jobs.filter((j) => !j.done),
    )
  t.ok(maxAbsDiff(jobs[0]?.latents as Float32Array, alone[0] as Float32Array) < 1e-5)
  t.ok(maxAbsDiff(jobs[1]?.latents as Float32Array, alone[1] as Float32Array) < 1e-5)
  t.ok(maxAbsDiff(alone[0] as Float32Array, alone[1] as Float32Array) > 0.1, 'the two images differ')
})

t.test('the batched loop over two seeds equals two single loops', async (t) => {
  const { condition, mask } = padCondition(config, spanHidden(config, 68, 3))
  const both = await denoise(
    model,
    Float32Array.from([...condition, ...condition]),
    [...Array.from(mask), ...Array.from(mask)],
    [1, 2],
  )
  const one = await denoise(model, condition, mask, [1])
  const two = await denoise(model, condition, mask, [2])
  t.ok(maxAbsDiff(both.subarray(0, one.length), one) < 1e-5)
  t.ok(maxAbsDiff(both.subarray(one.length), two) < 1e-5)
  t.ok(maxAbsDiff(one, two) > 0.1, 'seeds matter')
})

t.test('a condition given as a view into a larger buffer gives the same latents', async (t) => {
  const { condition, mask } = padCondition(config, spanHidden(config, 68, 1))
  const buffer = new Float32Array(condition.length * 3)
  buffer.set(condition, condition.length)
  const own = new DenoiseJob(model, { condition, mask, seed: 4 })
  const view = new DenoiseJob(model, {
    condition: buffer.subarray(condition.length, 2 * condition.length),
    mask,
    seed: 4,
  })
  while (!(await own.step()));
  while (!(await view.step()));
  t.same(view.latents, own.latents)
})

t.test('steps and shift can be overridden per job', async (t) => {
  const job = DenoiseJob.fromSpan(model, spanHidden(config, 10, 0), 3, { steps: 2, shift: 1 })
  t.equal(job.steps, 2)
  await job.step()
  t.equal(job.sigma, 0.5)
  t.equal(await job.step(), true)
})

t.test('a job refuses to run twice at once or twice in one batch', async (t) => {
  const job = DenoiseJob.fromSpan(model, spanHidden(config, 10, 0), 3)
  await t.rejects(denoiseStepBatched(model, [job, job]), /appears twice/)
  const first = job.step()
  await t.rejects(job.step(), /already running/)
  await first
  t.equal(job.stepIndex, 1)
})

t.test('a condition of the wrong length is refused', async (t) => {
  t.throws(
    () => new DenoiseJob(model, { condition: new Float32Array(10), mask: new Uint8Array(96), seed: 1 }),
    /expected condition_length · hidden = 24576/,
  )
  t.throws(
    () => new DenoiseJob(model, { condition: new Float32Array(96 * 256), mask: new Uint8Array(95), seed: 1 }),
    /expected condition_length = 96/,
  )
})

t.test(
  'the clean-latent estimate is x − σ·v: absent before the first step, the latents themselves at the end',
  async (t) => {
    const job = DenoiseJob.fromSpan(model, spanHidden(config, 10, 0), 3, { steps: 2, shift: 1 })
    t.equal(job.cleanEstimate(), undefined)
    const noise = job.latents.slice()
    await job.step()
    const estimate = job.cleanEstimate() as Float32Array
    // One Euler step from σ = 1 to 0.5: x = noise − 0.5·v, so x − 0.5·v = noise − v, the estimate from the noise.
    const fromNoise = job.latents.map((x, i) => 2 * x - (noise[i] as number))
    t.ok(maxAbsDiff(estimate, fromNoise) < 1e-5, `x − σ·v equals noise − v (${maxAbsDiff(estimate, fromNoise)})`)
    await job.step()
    t.same(job.cleanEstimate(), job.latents, 'σ = 0 at the end')
  },
)
