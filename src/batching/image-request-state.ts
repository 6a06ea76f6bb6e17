/**
 * The HTTP thread's record of one image request: progress and images in, one
 * `done` (or `error`) out once every image arrived. Ends exactly once.
 */
import { GenerationError, type EngineObserver, type GenerationErrorCode } from './client-types.js'
import { imageEvents } from './event-queue.js'
import type { WorkerToHost } from './protocol.js'
import type { Reservation } from './scheduler/index.js'

export class ImageRequestState {
  readonly queue = imageEvents()
  readonly admitted: Promise<void>
  promptTokens = 0
  finished = false
  onEnd: (() => void) | undefined
  private resolveAdmitted!: () => void
  private rejectAdmitted!: (err: GenerationError) => void
  private readonly submittedAt = performance.now()
  private firstEventAt: number | undefined
  private delivered = 0
  private readonly denoiseStepMs: number[] = []

  constructor(
    readonly n: number,
    private readonly tokensPerImage: number,
    private readonly reservation: Reservation,
    private readonly observer: EngineObserver | undefined,
  ) {
    this.admitted = new Promise((resolve, reject) => {
      this.resolveAdmitted = resolve
      this.rejectAdmitted = reject
    })
  }

  admit(message: Extract<WorkerToHost, { type: 'admitted' }>): void {
    this.promptTokens = message.promptTokens
    this.reservation.commit(message.promptTokens * this.n)
    this.resolveAdmitted()
  }

  rejectWith(code: GenerationErrorCode, message: string): void {
    this.reservation.release()
    this.finished = true
    this.observer?.requestRejected(code)
    this.rejectAdmitted(new GenerationError(code, message))
  }

  progress(message: Extract<WorkerToHost, { type: 'imageProgress' }>): void {
    this.firstEventAt ??= performance.now()
    this.reservation.release()
    this.queue.push({ type: 'progress', index: message.index, phase: message.phase, step: message.step, total: message.total })
  }

  image(message: Extract<WorkerToHost, { type: 'image' }>): void {
    this.denoiseStepMs.push(...message.denoiseStepMs)
    this.queue.push({ type: 'image', index: message.index, png: message.png })
    this.delivered++
    if (this.delivered < this.n) return
    const now = performance.now()
    const imageTokens = this.n * this.tokensPerImage
    const timings = { queueMs: (this.firstEventAt ?? now) - this.submittedAt, firstTokenMs: this.firstEventAt === undefined ? undefined : this.firstEventAt - this.submittedAt, totalMs: now - this.submittedAt }
    this.queue.push({ type: 'done', usage: { promptTokens: this.promptTokens, imageTokens, totalTokens: this.promptTokens + imageTokens }, timings })
    this.observer?.imageRequestFinished({ images: this.n, imageTokens, totalMs: timings.totalMs, denoiseStepMs: this.denoiseStepMs })
    this.end()
  }

  fail(code: GenerationErrorCode, message: string): void {
    if (this.finished) return
    this.rejectAdmitted(new GenerationError(code, message))
    this.queue.push({ type: 'error', code, message })
    this.end()
  }

  aborted(): void {
    if (this.finished) return
    this.end()
  }

  private end(): void {
    this.finished = true
    this.reservation.release()
    this.onEnd?.()
    this.queue.end()
  }
}
