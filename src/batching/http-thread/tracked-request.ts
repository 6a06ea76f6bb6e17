/**
 * What every request the HTTP thread tracks has in common: its place in the
 * waiting queue, the promise `submit` awaits until the worker admits or
 * rejects it, and a single end. Chat and image requests extend it.
 *
 *   created ─► admit() | rejectWith() ─► … ─► end()   (end runs once; the place is released by then)
 */
import type { EngineObserver } from '../client-types.js'
import type { WorkerToHost } from '../protocol.js'
import type { Reservation } from './admission.js'
import type { KelixError } from '../../errors/kelix-error.js'

export abstract class TrackedRequest {
  readonly admitted: Promise<void>
  promptTokens = 0
  finished = false
  /** Called once when the request ends, whatever the way. */
  onEnd: (() => void) | undefined
  protected readonly submittedAt = performance.now()
  private resolveAdmitted!: () => void
  private rejectAdmitted!: (err: KelixError) => void

  constructor(
    readonly n: number,
    protected readonly reservation: Reservation,
    protected readonly observer: EngineObserver | undefined,
  ) {
    this.admitted = new Promise((resolve, reject) => {
      this.resolveAdmitted = resolve
      this.rejectAdmitted = reject
    })
    // A rejection nobody awaits (the request failed before submit looked) must not crash the process.
    this.admitted.catch(() => undefined)
  }

  /** The worker built the prompt; the queue place now counts its real size. */
  admit(message: Extract<WorkerToHost, { type: 'admitted' }>): void {
    this.promptTokens = message.promptTokens
    this.reservation.commit(message.promptTokens * this.n)
    this.resolveAdmitted()
  }

  /** Refused before anything ran: `submit` throws this. */
  rejectWith(error: KelixError): void {
    this.reservation.release()
    this.finished = true
    this.observer?.requestRejected(error.code)
    this.rejectAdmitted(error)
  }

  /** The engine failed or shut down: a waiting `submit` throws, a reader gets one error event. */
  fail(error: KelixError): void {
    if (this.finished) return
    this.rejectAdmitted(error)
    this.pushError(error)
    this.terminate('error')
  }

  /** The client left: nothing more is delivered. */
  aborted(): void {
    if (this.finished) return
    this.terminate('abort')
  }

  protected abstract pushError(error: KelixError): void

  /** Ends early (client gone, engine failed); subclasses that report metrics record it here. */
  protected terminate(_reason: 'abort' | 'error'): void {
    this.end()
  }

  /** Marks the end once: frees the queue place and calls `onEnd`. Subclasses close their queue. */
  protected end(): void {
    this.finished = true
    this.reservation.release()
    this.onEnd?.()
  }
}
