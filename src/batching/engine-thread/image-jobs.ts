/**
 * Image requests inside the worker, after their token phase: each finished
 * image sequence becomes a denoise job; the loop runs one batched denoise step
 * between engine steps, so a 50-step denoise never stalls chat streams.
 *
 *   token phase (scheduler, shared batch) ─► span hidden states ─► DenoiseJob
 *   loop: engine step ─► one denoise step for every job ─► done jobs: VAE ─► PNG ─► post 'image'
 */
import type { Engine } from '../../engine/engine.js'
import type { ImageDecoder } from '../../engine/model.js'
import { decodeImages, DenoiseJob, denoiseStepBatched, encodePng } from '../../engine/image-gen/index.js'
import type { WorkerToHost } from '../protocol.js'

interface Job {
  reqId: string
  index: number
  job: DenoiseJob
  stepMs: number[]
  /** Denoise steps after which a partial image is sent, in order. */
  partialSteps: number[]
  partialsSent: number
}

/** Steps after which `count` partial images are sent: evenly spaced over the loop, never after the last step. */
export function partialImageSteps(steps: number, count: number): number[] {
  const at = Array.from({ length: count }, (_, k) => Math.round((steps * (k + 1)) / (count + 1)))
  return [...new Set(at)].filter((step) => step >= 1 && step < steps)
}

export class ImageJobs {
  private jobs: Job[] = []

  constructor(
    private readonly engine: Engine,
    private readonly post: (message: WorkerToHost, transfer?: ArrayBuffer[]) => void,
  ) {}

  /** Jobs exist only for image sequences, which the loop admits only when the model has an image decoder. */
  private get decoder(): ImageDecoder {
    const decoder = this.engine.model.imageDecoder
    if (decoder === undefined) throw new Error('image job on a model without an image decoder')
    return decoder
  }

  get pending(): number {
    return this.jobs.length
  }

  /** Starts denoising the image whose token phase just finished, sending `partialImages` previews on the way. */
  start(reqId: string, index: number, span: Float32Array, opts: { seed: number; partialImages: number; guidance: number | undefined }): void {
    const job = DenoiseJob.fromSpan(this.decoder, span, opts.seed, opts.guidance === undefined ? {} : { guidance: opts.guidance })
    this.jobs.push({ reqId, index, job, stepMs: [], partialSteps: partialImageSteps(job.steps, opts.partialImages), partialsSent: 0 })
  }

  /** Drops every job of a request (aborted, or timed out). */
  cancel(reqId: string): void {
    this.jobs = this.jobs.filter((j) => j.reqId !== reqId)
  }

  /** One denoise step for every job, batched; finished jobs are decoded, encoded and posted. */
  async step(): Promise<void> {
    if (this.jobs.length === 0) return
    const batch = [...this.jobs]
    const started = performance.now()
    try {
      await denoiseStepBatched(this.decoder, batch.map((j) => j.job))
    } catch (err) {
      for (const j of batch) this.post({ type: 'imageFailed', reqId: j.reqId, message: `denoising failed: ${(err as Error).message}` })
      this.jobs = this.jobs.filter((j) => !batch.includes(j))
      return
    }
    const took = performance.now() - started
    for (const j of batch) {
      j.stepMs.push(took)
      this.post({ type: 'imageProgress', reqId: j.reqId, index: j.index, phase: 'denoise', step: j.job.stepIndex, total: j.job.steps })
    }
    await this.sendPartials(batch.filter((j) => j.partialSteps[j.partialsSent] === j.job.stepIndex))
    const done = batch.filter((j) => j.job.done && this.jobs.includes(j))
    if (done.length === 0) return
    this.jobs = this.jobs.filter((j) => !done.includes(j))
    const pngs = await this.encode(done.map((j) => j.job.latents))
    done.forEach((j, i) => {
      const png = pngs[i] as Uint8Array
      this.post({ type: 'image', reqId: j.reqId, index: j.index, png, denoiseStepMs: j.stepMs }, transferable(png))
    })
  }

  /** Decodes and posts the current clean-latent estimate of each job due a partial image. */
  private async sendPartials(due: readonly Job[]): Promise<void> {
    if (due.length === 0) return
    const pngs = await this.encode(due.map((j) => j.job.cleanEstimate() as Float32Array))
    due.forEach((j, i) => {
      const png = pngs[i] as Uint8Array
      this.post({ type: 'imagePartial', reqId: j.reqId, index: j.index, partialIndex: j.partialsSent++, png }, transferable(png))
    })
  }

  /** Latents → PNGs, one VAE call for all. */
  private async encode(latents: readonly Float32Array[]): Promise<Uint8Array[]> {
    const size = this.decoder.config.image_generation.image_size
    const pixels = await decodeImages(this.decoder, latents)
    return Promise.all(pixels.map((rgb) => encodePng(rgb, size)))
  }
}

/** The PNG's buffer to transfer when the PNG owns it whole (never a pooled Buffer's). */
function transferable(png: Uint8Array): ArrayBuffer[] {
  return png.byteOffset === 0 && png.byteLength === png.buffer.byteLength ? [png.buffer as ArrayBuffer] : []
}
