/**
 * The HTTP thread's record of one image request: progress and images in, one
 * `done` (or `error`) out once every image arrived. Ends exactly once.
 */
import type { KelixError } from '../../errors/kelix-error.js'
import type { EngineObserver, ImageUsage } from '../client-types.js'
import { imageEvents } from './event-queue.js'
import type { WorkerToHost } from '../protocol.js'
import type { Reservation } from './admission.js'
import { TrackedRequest } from './tracked-request.js'

export class ImageRequestState extends TrackedRequest {
  readonly queue = imageEvents()
  private firstEventAt: number | undefined
  private delivered = 0
  private readonly denoiseStepMs: number[] = []

  constructor(
    n: number,
    private readonly tokensPerImage: number,
    reservation: Reservation,
    observer: EngineObserver | undefined,
  ) {
    super(n, reservation, observer)
  }

  progress(message: Extract<WorkerToHost, { type: 'imageProgress' }>): void {
    this.firstEventAt ??= performance.now()
    this.reservation.release()
    this.queue.push({
      type: 'progress',
      index: message.index,
      phase: message.phase,
      step: message.step,
      total: message.total,
    })
  }

  partial(message: Extract<WorkerToHost, { type: 'imagePartial' }>): void {
    this.queue.push({ type: 'partial', index: message.index, partialIndex: message.partialIndex, png: message.png })
  }

  /** Known once admitted: every image's token phase writes the grammar's blocks. */
  get usage(): ImageUsage {
    const imageTokens = this.n * this.tokensPerImage
    return { promptTokens: this.promptTokens, imageTokens, totalTokens: this.promptTokens + imageTokens }
  }

  image(message: Extract<WorkerToHost, { type: 'image' }>): void {
    this.denoiseStepMs.push(...message.denoiseStepMs)
    this.queue.push({ type: 'image', index: message.index, png: message.png })
    this.delivered++
    if (this.delivered < this.n) return
    const now = performance.now()
    const usage = this.usage
    const timings = {
      queueMs: (this.firstEventAt ?? now) - this.submittedAt,
      firstTokenMs: this.firstEventAt === undefined ? undefined : this.firstEventAt - this.submittedAt,
      totalMs: now - this.submittedAt,
    }
    this.queue.push({ type: 'done', usage, timings })
    this.observer?.imageRequestFinished({
      images: this.n,
      imageTokens: usage.imageTokens,
      totalMs: timings.totalMs,
      denoiseStepMs: this.denoiseStepMs,
    })
    this.end()
  }

  protected override terminate(reason: 'abort' | 'error'): void {
    if (reason === 'abort') this.observer?.imageRequestAborted()
    this.end()
  }

  protected pushError(error: KelixError): void {
    this.queue.push({ type: 'error', error })
  }

  protected override end(): void {
    super.end()
    this.queue.end()
  }
}
