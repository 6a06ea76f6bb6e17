/**
 * The flow-matching sampler over dit.onnx, one Euler step at a time so a scheduler can interleave
 * denoising with chat decode steps.
 *
 *   x₀ ~ N(0, I) from the job's seed            (latents [C, s, s])
 *   for i = 0 … steps−1:  v_c = dit(xᵢ, σᵢ, condition, mask)
 *                         v_u = dit(xᵢ, σᵢ, null caption)            (only when guidance g ≠ 1)
 *                         v   = v_u + g·(v_c − v_u)                   (classifier-free guidance)
 *                         xᵢ₊₁ = xᵢ + (σᵢ₊₁ − σᵢ)·v                 (σ from schedule.ts: 1 → 0)
 *
 * The DiT predicts the velocity ε − x_image of the path x_σ = (1 − σ)·x_image + σ·ε, so the loop
 * ends at the image latents. The arithmetic is float32 throughout, as the reference's. At g = 1
 * the unconditional pass is skipped: the reference runs it weighted 0, which changes only rounding.
 *
 * Several jobs, each at its own step, share one dit.onnx call (`denoiseStepBatched`); every image
 * in the batch is computed independently, so a job's latents do not depend on its batch mates.
 */
import ort from 'onnxruntime-node'
import { MODEL_FILES } from '../graph-signatures.js'
import type { ImageDecoder } from '../model.js'
import { checkedFloat } from './checked-output.js'
import { padCondition, type PaddedCondition } from './condition.js'
import { gaussianNoise } from './noise.js'
import { sigmaSchedule } from './schedule.js'

/** What the sampler uses of a loaded model's image decoder. */
export type ImageGenModel = Pick<ImageDecoder, 'config'> & {
  dit: Pick<ImageDecoder['dit'], 'run'>
  vaeDecoder: Pick<ImageDecoder['vaeDecoder'], 'run'>
}

export interface DenoiseOptions {
  /** Euler steps. Default: config.json `image_generation.steps`. */
  steps?: number
  /** Timestep shift. Default: config.json `image_generation.shift`. */
  shift?: number
  /** Classifier-free guidance scale. Default: config.json `image_generation.guidance`. */
  guidance?: number
  /** The starting latents instead of the seed's noise (to replay a recorded run). */
  noise?: Float32Array
}

const f32 = Math.fround

/** One image being denoised: its condition, its noise seed, its current latents and step. */
export class DenoiseJob {
  /** Euler steps in all. */
  readonly steps: number
  /** Classifier-free guidance scale; 1 runs the conditional pass alone. */
  readonly guidance: number
  /** The current latents [latent_channels · latent_size · latent_size]; the image latents once `done`. */
  readonly latents: Float32Array
  /** [condition_length · hidden]; kept by reference, not copied. */
  readonly condition: Float32Array
  readonly mask: BigInt64Array
  readonly #model: ImageGenModel
  readonly #sigmas: Float32Array
  /** The velocity of the last step, for the clean-latent estimate. */
  #velocity: Float32Array | undefined
  #stepIndex = 0
  #running = false

  /**
   * @param input the padded condition (see `padCondition`) and the noise seed
   * @throws RangeError when the condition or mask does not have the configured length
   */
  constructor(model: ImageGenModel, input: PaddedCondition & { seed: number }, opts: DenoiseOptions = {}) {
    const config = model.config
    const { condition_length: length, latent_channels: channels, latent_size: side } = config.image_generation
    const values = length * config.llm.hidden_size
    if (input.condition.length !== values)
      throw new RangeError(
        `the condition has ${input.condition.length} values, expected condition_length · hidden = ${values}`,
      )
    if (input.mask.length !== length)
      throw new RangeError(`the condition mask has ${input.mask.length} values, expected condition_length = ${length}`)
    this.steps = opts.steps ?? config.image_generation.steps
    this.guidance = opts.guidance ?? config.image_generation.guidance
    if (!Number.isFinite(this.guidance) || this.guidance < 0)
      throw new RangeError(`guidance must be a finite number ≥ 0, got ${this.guidance}`)
    this.#sigmas = sigmaSchedule(this.steps, opts.shift ?? config.image_generation.shift)
    const size = channels * side * side
    if (opts.noise !== undefined && opts.noise.length !== size)
      throw new RangeError(`the starting latents have ${opts.noise.length} values, expected ${size}`)
    this.latents = opts.noise?.slice() ?? gaussianNoise(input.seed, size)
    this.#model = model
    this.condition = input.condition
    this.mask = BigInt64Array.from(Array.from(input.mask, (m) => (m === 0 ? 0n : 1n)))
  }

  /** A job for one span's hidden states [length · hidden], padded here. */
  static fromSpan(model: ImageGenModel, span: Float32Array, seed: number, opts: DenoiseOptions = {}): DenoiseJob {
    return new DenoiseJob(model, { ...padCondition(model.config, span), seed }, opts)
  }

  /** Steps taken so far, 0 … steps. */
  get stepIndex(): number {
    return this.#stepIndex
  }

  get done(): boolean {
    return this.#stepIndex >= this.steps
  }

  /** The noise level of the current latents: 1 before the first step, 0 when done. */
  get sigma(): number {
    return this.#sigmas[this.#stepIndex] as number
  }

  /**
   * The sampler's current guess of the clean latents, x − σ·v (the flow runs
   * from noise at σ = 1 to the image at σ = 0 with velocity v = dx/dσ): what a
   * partial image shows. Undefined before the first step.
   */
  cleanEstimate(): Float32Array | undefined {
    const velocity = this.#velocity
    if (velocity === undefined) return undefined
    const sigma = this.sigma
    return this.latents.map((x, i) => x - sigma * (velocity[i] as number))
  }

  /** Runs the next Euler step alone; resolves true when the job is done. */
  async step(): Promise<boolean> {
    await denoiseStepBatched(this.#model, [this])
    return this.done
  }

  /** Runs the next Euler step of every job in one dit.onnx call. */
  static async stepBatched(model: ImageGenModel, jobs: readonly DenoiseJob[]): Promise<void> {
    if (jobs.length === 0) return
    if (new Set(jobs).size !== jobs.length) throw new Error('a denoise job appears twice in one batch')
    for (const job of jobs) {
      if (job.done) throw new Error(`the denoise job is already done (${job.steps} steps)`)
      if (job.#running) throw new Error('the denoise job is already running a step')
    }
    for (const job of jobs) job.#running = true
    try {
      const rows = ditRows(jobs)
      const velocity = await runDit(model, rows)
      const size = jobs[0]?.latents.length ?? 0
      const row = (r: number) => velocity.subarray(r * size, (r + 1) * size)
      let r = 0
      for (const job of jobs) {
        if (job.guidance === 1) {
          job.#advance(row(r++))
        } else {
          const unconditional = row(r++)
          job.#advance(guided(unconditional, row(r++), job.guidance))
        }
      }
    } finally {
      for (const job of jobs) job.#running = false
    }
  }

  #advance(velocity: Float32Array): void {
    const dt = f32((this.#sigmas[this.#stepIndex + 1] as number) - this.sigma)
    const x = this.latents
    // Stored into a Float32Array, so the sum is rounded to float32 like the product.
    for (let i = 0; i < x.length; i++) x[i] = (x[i] as number) + f32(dt * (velocity[i] as number))
    this.#velocity = velocity.slice()
    this.#stepIndex++
  }
}

/** Runs the next Euler step of every job in one dit.onnx call (jobs may be at different steps). */
export function denoiseStepBatched(model: ImageGenModel, jobs: readonly DenoiseJob[]): Promise<void> {
  return DenoiseJob.stepBatched(model, jobs)
}

/**
 * The whole loop for a batch of images: `condition` [B · condition_length · hidden], `mask`
 * [B · condition_length], one seed per image. Returns the final latents [B · C · s · s].
 */
export async function denoise(
  model: ImageGenModel,
  condition: Float32Array,
  mask: ArrayLike<number>,
  seeds: readonly number[],
  opts: DenoiseOptions = {},
): Promise<Float32Array> {
  const { condition_length: length } = model.config.image_generation
  const values = length * model.config.llm.hidden_size
  if (condition.length !== seeds.length * values)
    throw new RangeError(`the condition has ${condition.length} values, expected ${seeds.length} × ${values}`)
  if (mask.length !== seeds.length * length)
    throw new RangeError(`the condition mask has ${mask.length} values, expected ${seeds.length} × ${length}`)
  const jobs = seeds.map((seed, b) => {
    const maskRow = Array.from({ length }, (_, i) => mask[b * length + i] as number)
    return new DenoiseJob(
      model,
      { condition: condition.subarray(b * values, (b + 1) * values), mask: maskRow, seed },
      opts,
    )
  })
  while (jobs.some((job) => !job.done))
    await denoiseStepBatched(
      model,
      jobs.filter((job) => !job.done),
    )
  const size = jobs[0]?.latents.length ?? 0
  const out = new Float32Array(jobs.length * size)
  jobs.forEach((job, b) => out.set(job.latents, b * size))
  return out
}

/** v_u + g·(v_c − v_u), each operation rounded to float32 as the reference's. */
function guided(unconditional: Float32Array, conditional: Float32Array, guidance: number): Float32Array {
  return unconditional.map((u, i) => u + f32(guidance * f32((conditional[i] as number) - u)))
}

/** One row of a dit.onnx batch: a job's latents with its condition, or with the null caption. */
interface DitRow {
  job: DenoiseJob
  unconditional: boolean
}

/** Each job's rows in order: [unconditional, conditional] when it is guided, [conditional] otherwise. */
function ditRows(jobs: readonly DenoiseJob[]): DitRow[] {
  return jobs.flatMap((job) =>
    job.guidance === 1
      ? [{ job, unconditional: false }]
      : [
          { job, unconditional: true },
          { job, unconditional: false },
        ],
  )
}

/**
 * One dit.onnx call over the rows' current latents; returns the velocity [N · C · s · s]. An
 * unconditional row's condition and mask are ignored by the graph (it uses its null caption), so
 * the job's own are fed rather than new zeros.
 */
async function runDit(model: ImageGenModel, rows: readonly DitRow[]): Promise<Float32Array> {
  const config = model.config
  const { condition_length: length, latent_channels: channels, latent_size: side } = config.image_generation
  const n = rows.length
  const latentDims = [n, channels, side, side]
  const feeds = {
    latents: new ort.Tensor('float32', concatFloat(rows.map((r) => r.job.latents)), latentDims),
    timestep: new ort.Tensor(
      'float32',
      Float32Array.from(rows, (r) => r.job.sigma),
      [n],
    ),
    condition: new ort.Tensor('float32', concatFloat(rows.map((r) => r.job.condition)), [
      n,
      length,
      config.llm.hidden_size,
    ]),
    condition_mask: new ort.Tensor('int64', concatInt64(rows.map((r) => r.job.mask)), [n, length]),
    unconditional: new ort.Tensor(
      'bool',
      Uint8Array.from(rows, (r) => (r.unconditional ? 1 : 0)),
      [n],
    ),
  }
  let outputs: ort.InferenceSession.ReturnType
  try {
    outputs = await model.dit.run(feeds)
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    throw new Error(
      `${MODEL_FILES.dit} failed on latents float32 [${latentDims.join(', ')}], timestep float32 [${n}], condition float32 [${n}, ${length}, ${config.llm.hidden_size}], condition_mask int64 [${n}, ${length}], unconditional bool [${n}]: ${message}`,
      { cause: err },
    )
  }
  return checkedFloat(outputs.velocity, 'velocity', latentDims, MODEL_FILES.dit)
}

/** The parts back to back (all of one length); a single part is returned as is. */
function concatFloat(parts: readonly Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0] as Float32Array
  const size = parts[0]?.length ?? 0
  const out = new Float32Array(parts.length * size)
  parts.forEach((part, i) => out.set(part, i * size))
  return out
}

function concatInt64(parts: readonly BigInt64Array[]): BigInt64Array {
  if (parts.length === 1) return parts[0] as BigInt64Array
  const size = parts[0]?.length ?? 0
  const out = new BigInt64Array(parts.length * size)
  parts.forEach((part, i) => out.set(part, i * size))
  return out
}
