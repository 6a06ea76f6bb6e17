/**
 * Image requests inside the worker, after their token phase: each finished
 * image sequence becomes a denoise job; the loop runs one batched denoise step
 * between engine steps, so a 50-step denoise never stalls chat streams.
 *
 *   token phase (scheduler, shared batch) ─► span hidden states ─► DenoiseJob
 *   loop: engine step ─► one denoise step for every job ─► done jobs: VAE ─► PNG ─► post 'image'
 */
import type { ImageDecoder } from '../../engine/model.js'
import { decodeImages, DenoiseJob, denoiseStepBatched, encodePng } from '../../engine/image-gen/index.js'
import type { WorkerToHost } from '../protocol.js'
import type { Denoising, ImagePainter } from './loop-engine.js'

interface Job {
  reqId: string
  index: number
  job: Denoising
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

/** The painter of a model with an image decoder: dit.onnx steps, vae_decoder.onnx, PNG. */
export function decoderPainter(decoder: ImageDecoder): ImagePainter {
  const config = decoder.config.image_generation
  return {
    config,
    start: (span, seed, guidance) =>
      DenoiseJob.fromSpan(decoder, span, seed, guidance === undefined ? {} : { guidance }),
    // Every job was made by `start` above.
    step: (jobs) => denoiseStepBatched(decoder, jobs as readonly DenoiseJob[]),
    pngs: async (latents) =>
      Promise.all((await decodeImages(decoder, latents)).map((rgb) => encodePng(rgb, config.image_size))),
  }
}

export class ImageJobs {
  private jobs: Job[] = []

  constructor(
    private readonly painter: ImagePainter,
    private readonly post: (message: WorkerToHost, transfer?: ArrayBuffer[]) => void,
    /** A request whose denoising failed; called once per request, after its jobs are dropped. */
    private readonly failed: (reqId: string, message: string) => void,
  ) {}

  get pending(): number {
    return this.jobs.length
  }

  /** Starts denoising the image whose token phase just finished, sending `partialImages` previews on the way. */
  start(
    reqId: string,
    index: number,
    span: Float32Array,
    opts: { seed: number; partialImages: number; guidance: number | undefined },
  ): void {
    const job = this.painter.start(span, opts.seed, opts.guidance)
    this.jobs.push({
      reqId,
      index,
      job,
      stepMs: [],
      partialSteps: partialImageSteps(job.steps, opts.partialImages),
      partialsSent: 0,
    })
  }

  /** Drops every job of a request (aborted, timed out, failed). */
  cancel(reqId: string): void {
    this.jobs = this.jobs.filter((j) => j.reqId !== reqId)
  }

  /** One denoise step for every job, batched; finished jobs are decoded, encoded and posted. A failure fails the batch's requests. */
  async step(): Promise<void> {
    if (this.jobs.length === 0) return
    const batch = [...this.jobs]
    try {
      await this.stepBatch(batch)
    } catch (err) {
      const message = `denoising failed: ${(err as Error).message}`
      this.jobs = this.jobs.filter((j) => !batch.includes(j))
      for (const reqId of new Set(batch.map((j) => j.reqId))) this.failed(reqId, message)
    }
  }

  private async stepBatch(batch: Job[]): Promise<void> {
    const started = performance.now()
    await this.painter.step(batch.map((j) => j.job))
    const took = performance.now() - started
    for (const j of batch) {
      j.stepMs.push(took)
      this.post({
        type: 'imageProgress',
        reqId: j.reqId,
        index: j.index,
        phase: 'denoise',
        step: j.job.stepIndex,
        total: j.job.steps,
      })
    }
    await this.sendPartials(batch.filter((j) => j.partialSteps[j.partialsSent] === j.job.stepIndex))
    const done = batch.filter((j) => j.job.done && this.jobs.includes(j))
    if (done.length === 0) return
    const pngs = await this.painter.pngs(done.map((j) => j.job.latents))
    this.jobs = this.jobs.filter((j) => !done.includes(j))
    done.forEach((j, i) => {
      const png = pngs[i] as Uint8Array
      this.post({ type: 'image', reqId: j.reqId, index: j.index, png, denoiseStepMs: j.stepMs }, transferable(png))
    })
  }

  /** Decodes and posts the current clean-latent estimate of each job due a partial image. */
  private async sendPartials(due: readonly Job[]): Promise<void> {
    if (due.length === 0) return
    const pngs = await this.painter.pngs(due.map((j) => j.job.cleanEstimate() as Float32Array))
    due.forEach((j, i) => {
      const png = pngs[i] as Uint8Array
      this.post(
        { type: 'imagePartial', reqId: j.reqId, index: j.index, partialIndex: j.partialsSent++, png },
        transferable(png),
      )
    })
  }
}

/** The PNG's buffer to transfer when the PNG owns it whole (never a pooled Buffer's). */
function transferable(png: Uint8Array): ArrayBuffer[] {
  return png.byteOffset === 0 && png.byteLength === png.buffer.byteLength ? [png.buffer as ArrayBuffer] : []
}
