/**
 * The HTTP thread's record of one request: its event queue, its admission
 * place, and the clock readings behind its timings and metrics. Every request
 * ends exactly once: done, error, or aborted.
 */
import { KelixError } from '../../errors/kelix-error.js'
import type { EngineObserver, FinishReason, RequestRecord } from '../client-types.js'
import { chatEvents } from './event-queue.js'
import type { SequenceUpdate, WorkerToHost } from '../protocol.js'
import type { Reservation } from './admission.js'
import { TrackedRequest } from './tracked-request.js'

type Ending = RequestRecord['finishReason']

export class RequestState extends TrackedRequest {
  readonly queue = chatEvents()
  imagePositions = 0
  private startedAt: number | undefined
  private firstTokenAt: number | undefined
  private readonly lastTokenAt: Array<number | undefined>
  private readonly interTokenMs: number[] = []
  private completionTokens = 0
  private cachedPromptTokens = 0
  private choicesLeft: number
  private worstEnding: Ending | undefined
  /** 'length' when any choice ran out of tokens, else 'stop'. */
  private choicesEnding: FinishReason = 'stop'

  constructor(
    n: number,
    reservation: Reservation,
    observer: EngineObserver | undefined,
    /** Constrained to a response format (for metrics). */
    private readonly constrained = false,
  ) {
    super(n, reservation, observer)
    this.choicesLeft = n
    this.lastTokenAt = Array.from({ length: n }, () => undefined)
  }

  override admit(message: Extract<WorkerToHost, { type: 'admitted' }>): void {
    this.imagePositions = message.imagePositions
    for (const image of message.images) this.observer?.image(image)
    super.admit(message)
  }

  /** The request left the waiting queue, its first `cachedTokens` prompt positions found in the prefix cache. */
  started(cachedTokens: number): void {
    if (this.startedAt !== undefined) return
    this.startedAt = performance.now()
    this.cachedPromptTokens = cachedTokens
    this.reservation.release()
  }

  update(update: SequenceUpdate): void {
    const now = performance.now()
    if (update.prompt !== undefined)
      this.queue.push({ type: 'prompt', text: update.prompt.text, logprobs: update.prompt.logprobs })
    if (update.tokenIds.length > 0) {
      this.completionTokens += update.tokenIds.length
      this.firstTokenAt ??= now
      const last = this.lastTokenAt[update.choice]
      if (last !== undefined) this.interTokenMs.push(now - last)
      this.lastTokenAt[update.choice] = now
      this.queue.push({
        type: 'delta',
        choice: update.choice,
        text: update.text,
        tokenIds: update.tokenIds,
        logprobs: update.logprobs,
      })
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

  protected pushError(error: KelixError): void {
    this.queue.push({ type: 'error', error })
  }

  protected override terminate(reason: 'abort' | 'error'): void {
    this.finishWith(reason, performance.now())
  }

  private complete(now: number): void {
    const ending = this.worstEnding
    if (ending === 'timeout')
      this.queue.push({ type: 'error', error: new KelixError('timeout', 'The request ran past its time limit.') })
    else if (ending === 'error')
      this.queue.push({ type: 'error', error: new KelixError('engine_failed', 'The engine failed while generating.') })
    else {
      const usage = {
        promptTokens: this.promptTokens,
        cachedPromptTokens: this.cachedPromptTokens,
        completionTokens: this.completionTokens,
        totalTokens: this.promptTokens + this.completionTokens,
      }
      this.queue.push({ type: 'done', usage, timings: this.timings(now) })
    }
    this.finishWith(ending ?? this.choicesEnding, now)
  }

  /** Ends with the record metrics see. */
  private finishWith(reason: Ending, now: number): void {
    if (this.finished) return
    const t = this.timings(now)
    this.end()
    this.observer?.requestFinished({
      finishReason: reason,
      promptTokens: this.promptTokens,
      completionTokens: this.completionTokens,
      imagePositions: this.imagePositions,
      queueMs: t.queueMs,
      firstTokenMs: t.firstTokenMs,
      totalMs: t.totalMs,
      interTokenMs: this.interTokenMs,
      constrained: this.constrained,
    })
  }

  protected override end(): void {
    super.end()
    this.queue.end()
  }

  private timings(now: number) {
    return {
      queueMs: (this.startedAt ?? now) - this.submittedAt,
      firstTokenMs: this.firstTokenAt === undefined ? undefined : this.firstTokenAt - this.submittedAt,
      totalMs: now - this.submittedAt,
    }
  }
}
