/**
 * The HTTP thread's record of one request: its event queue, its admission
 * place, and the clock readings behind its timings and metrics. Every request
 * ends exactly once: done, error, or aborted.
 */
import {
  GenerationError,
  type EngineObserver,
  type FinishReason,
  type GenerationErrorCode,
  type RequestRecord,
} from './client-types.js'
import { chatEvents } from './event-queue.js'
import type { SequenceUpdate, WorkerToHost } from './protocol.js'
import type { Reservation } from './scheduler/index.js'

type Ending = RequestRecord['finishReason']

export class RequestState {
  readonly queue = chatEvents()
  readonly admitted: Promise<void>
  promptTokens = 0
  imagePositions = 0
  finished = false
  /** Called once when the request ends, whatever the way. */
  onEnd: (() => void) | undefined
  private resolveAdmitted!: () => void
  private rejectAdmitted!: (err: GenerationError) => void
  private readonly submittedAt = performance.now()
  private startedAt: number | undefined
  private firstTokenAt: number | undefined
  private readonly lastTokenAt: Array<number | undefined>
  private readonly interTokenMs: number[] = []
  private completionTokens = 0
  private choicesLeft: number
  private worstEnding: Ending | undefined
  /** 'length' when any choice ran out of tokens, else 'stop'. */
  private choicesEnding: FinishReason = 'stop'

  constructor(
    readonly reqId: string,
    readonly n: number,
    private readonly reservation: Reservation,
    private readonly observer: EngineObserver | undefined,
  ) {
    this.choicesLeft = n
    this.lastTokenAt = Array.from({ length: n }, () => undefined)
    this.admitted = new Promise((resolve, reject) => {
      this.resolveAdmitted = resolve
      this.rejectAdmitted = reject
    })
  }

  admit(message: Extract<WorkerToHost, { type: 'admitted' }>): void {
    this.promptTokens = message.promptTokens
    this.imagePositions = message.imagePositions
    this.reservation.commit(message.promptTokens * this.n)
    for (const image of message.images) this.observer?.image(image)
    this.resolveAdmitted()
  }

  rejectWith(code: GenerationErrorCode, message: string): void {
    this.reservation.release()
    this.finished = true
    this.observer?.requestRejected(code)
    this.rejectAdmitted(new GenerationError(code, message))
  }

  /** The request left the waiting queue. */
  started(): void {
    this.startedAt ??= performance.now()
    this.reservation.release()
  }

  update(update: SequenceUpdate): void {
    const now = performance.now()
    if (update.tokenIds.length > 0) {
      this.completionTokens += update.tokenIds.length
      this.firstTokenAt ??= now
      const last = this.lastTokenAt[update.choice]
      if (last !== undefined) this.interTokenMs.push(now - last)
      this.lastTokenAt[update.choice] = now
      this.queue.push({ type: 'delta', choice: update.choice, text: update.text, tokenIds: update.tokenIds, logprobs: update.logprobs })
    }
    const reason = update.finishReason
    if (reason === undefined) return
    if (reason === 'stop' || reason === 'length') {
      this.queue.push({ type: 'finish', choice: update.choice, reason })
      if (reason === 'length') this.choicesEnding = 'length'
    } else this.worstEnding ??= reason
    this.choicesLeft--
    if (this.choicesLeft === 0) this.complete(now)
  }

  /** The client left: nothing more is delivered. */
  aborted(): void {
    if (this.finished) return
    this.end('abort', performance.now())
    this.queue.end()
  }

  /** The engine failed or shut down: the reader gets one error event. */
  fail(code: GenerationErrorCode, message: string): void {
    if (this.finished) return
    this.rejectAdmitted(new GenerationError(code, message))
    this.queue.push({ type: 'error', code, message })
    this.end('error', performance.now())
    this.queue.end()
  }

  private complete(now: number): void {
    const ending = this.worstEnding
    if (ending === 'timeout') this.queue.push({ type: 'error', code: 'timeout', message: 'The request ran past its time limit.' })
    else if (ending === 'error') this.queue.push({ type: 'error', code: 'engine_failed', message: 'The engine failed while generating.' })
    else {
      const usage = { promptTokens: this.promptTokens, completionTokens: this.completionTokens, totalTokens: this.promptTokens + this.completionTokens }
      this.queue.push({ type: 'done', usage, timings: this.timings(now) })
    }
    this.end(ending ?? this.choicesEnding, now)
    this.queue.end()
  }

  private end(reason: Ending, now: number): void {
    this.finished = true
    this.reservation.release()
    this.onEnd?.()
    const t = this.timings(now)
    this.observer?.requestFinished({
      finishReason: reason,
      promptTokens: this.promptTokens,
      completionTokens: this.completionTokens,
      imagePositions: this.imagePositions,
      queueMs: t.queueMs,
      firstTokenMs: t.firstTokenMs,
      totalMs: t.totalMs,
      interTokenMs: this.interTokenMs,
    })
  }

  private timings(now: number) {
    return {
      queueMs: (this.startedAt ?? now) - this.submittedAt,
      firstTokenMs: this.firstTokenAt === undefined ? undefined : this.firstTokenAt - this.submittedAt,
      totalMs: now - this.submittedAt,
    }
  }
}
