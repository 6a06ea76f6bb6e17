/**
 * Admission before any work: a request reserves its place in the waiting
 * queue before its images are fetched or decoded, so an overloaded server
 * rejects a burst cheaply (vLLM decodes first and rejects after).
 *
 *   reserve(estimate) --ok--> Reservation --commit(actual?)--> committed --release()--> released
 *          |                       |                                                      ^
 *          |                       +------------------ release() (failed before queueing) +
 *          +--rejected--> Rejection { reason, retryAfterSeconds }   (counted by reason)
 *
 * A reservation counts against both limits from `reserve()` until `release()`,
 * which the caller makes when the request leaves the waiting queue (first
 * scheduled, or ended before). `commit()` only swaps the estimate for the
 * actual block count once the prompt is built.
 */
import { requireInteger } from '../require-integer.js'

export type RejectionReason = 'queue_full' | 'queue_tokens_full' | 'draining'

export interface Rejection {
  readonly ok: false
  readonly reason: RejectionReason
  /** Seconds a client should wait before retrying, for `Retry-After`. */
  readonly retryAfterSeconds: number
}

export interface AdmissionOptions {
  /** Most requests reserved at once (queued or about to be). */
  maxWaiting: number
  /** Most blocks reserved at once; a request alone in the queue is admitted whatever its size. */
  maxWaitingTokens: number
  /** The `Retry-After` suggestion for every rejection. Default 1. */
  retryAfterSeconds?: number
}

/** Moves the controller's totals; kept private to this module. */
type Ledger = (count: number, tokens: number) => void

export class Reservation {
  readonly ok = true
  private state: 'reserved' | 'committed' | 'released' = 'reserved'

  /** @internal made by `AdmissionController.reserve()` only. */
  constructor(
    private tokensHeld: number,
    private readonly ledger: Ledger,
  ) {}

  /** Blocks this reservation counts against `maxWaitingTokens`. */
  get tokens(): number {
    return this.tokensHeld
  }

  get status(): 'reserved' | 'committed' | 'released' {
    return this.state
  }

  /** Marks the request queued, optionally with its actual size. Idempotent; false if already committed or released. */
  commit(actualTokens?: number): boolean {
    if (this.state !== 'reserved') return false
    if (actualTokens !== undefined) {
      requireInteger('actualTokens', actualTokens, 0)
      this.ledger(0, actualTokens - this.tokensHeld)
      this.tokensHeld = actualTokens
    }
    this.state = 'committed'
    return true
  }

  /** Gives the place back. Idempotent; false if already released. */
  release(): boolean {
    if (this.state === 'released') return false
    this.ledger(-1, -this.tokensHeld)
    this.state = 'released'
    return true
  }
}

export class AdmissionController {
  private readonly options: Required<AdmissionOptions>
  private count = 0
  private tokens = 0
  private isDraining = false
  private readonly rejected: Record<RejectionReason, number> = { queue_full: 0, queue_tokens_full: 0, draining: 0 }

  /** @throws KelixError INVALID_CONFIG naming the bad option. */
  constructor(options: AdmissionOptions) {
    this.options = { retryAfterSeconds: 1, ...options }
    requireInteger('maxWaiting', this.options.maxWaiting, 1)
    requireInteger('maxWaitingTokens', this.options.maxWaitingTokens, 1)
    requireInteger('retryAfterSeconds', this.options.retryAfterSeconds, 0)
  }

  /** Requests holding a place. */
  get waiting(): number {
    return this.count
  }

  /** Blocks the places hold. */
  get waitingTokens(): number {
    return this.tokens
  }

  get draining(): boolean {
    return this.isDraining
  }

  /** Rejections so far, by reason (a copy). */
  get rejections(): Record<RejectionReason, number> {
    return { ...this.rejected }
  }

  /** Takes a place for a request of `estimatedTokens` blocks, or says why not. */
  reserve(estimatedTokens: number): Reservation | Rejection {
    requireInteger('estimatedTokens', estimatedTokens, 0)
    const reason = this.refusal(estimatedTokens)
    if (reason !== undefined) {
      this.rejected[reason] += 1
      return { ok: false, reason, retryAfterSeconds: this.options.retryAfterSeconds }
    }
    this.move(1, estimatedTokens)
    return new Reservation(estimatedTokens, (count, tokens) => this.move(count, tokens))
  }

  /** Every later `reserve()` is rejected with 'draining'; places already held stay valid. */
  startDraining(): void {
    this.isDraining = true
  }

  private refusal(estimatedTokens: number): RejectionReason | undefined {
    if (this.isDraining) return 'draining'
    if (this.count >= this.options.maxWaiting) return 'queue_full'
    // An empty queue admits any size, or a large request could never get in.
    if (this.count > 0 && this.tokens + estimatedTokens > this.options.maxWaitingTokens) return 'queue_tokens_full'
    return undefined
  }

  private move(count: number, tokens: number): void {
    this.count += count
    this.tokens += tokens
  }
}
