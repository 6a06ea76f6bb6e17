/**
 * Image requests inside the worker, after their token phase: each finished
 * image sequence becomes a denoise job; the loop runs one batched denoise step
 * between engine steps, so a 50-step denoise never stalls chat streams.
 *
 *   token phase (scheduler, shared batch) ─► span hidden states ─► DenoiseJob
 *   loop: engine step ─► one denoise step for every job ─► done jobs: VAE ─► PNG ─► post 'image'
 */
import type { Engine } from '../engine/engine.js'
import type { ImageDecoder } from '../engine/model.js'
import { decodeImages, DenoiseJob, denoiseStepBatched, encodePng } from '../engine/image-gen/index.js'
import type { WorkerToHost } from './protocol.js'

interface Job {
  reqId: string
  index: number
  job: DenoiseJob
  stepMs: number[]
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

  /** Starts denoising the image whose token phase just finished. */
  start(reqId: string, index: number, span: Float32Array, seed: number): void {
    this.jobs.push({ reqId, index, job: DenoiseJob.fromSpan(this.decoder, span, seed), stepMs: [] })
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
    const done = batch.filter((j) => j.job.done && this.jobs.includes(j))
    if (done.length === 0) return
    this.jobs = this.jobs.filter((j) => !done.includes(j))
    const size = this.decoder.config.image_generation.image_size
    const pixels = await decodeImages(this.decoder, done.map((j) => j.job.latents))
    for (const [i, j] of done.entries()) {
      const png = await encodePng(pixels[i] as Uint8Array, size)
      // Transfer the PNG's buffer when it owns it whole (never a pooled Buffer's).
      const owned = png.byteOffset === 0 && png.byteLength === png.buffer.byteLength
      this.post({ type: 'image', reqId: j.reqId, index: j.index, png, denoiseStepMs: j.stepMs }, owned ? [png.buffer as ArrayBuffer] : [])
    }
  }
}
