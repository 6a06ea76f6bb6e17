/**
 * One request's events for the API layer, as an async iterable that never
 * makes the engine wait: when the reader is slow, a new event may merge into
 * a pending one (a chat delta into the pending delta of its choice, an image
 * progress report into the pending report of its image), so the queue stays
 * small however far behind the reader is.
 */
import type { GenerationEvent, ImageEvent } from '../client-types.js'

/** Folds `next` into `pending` when they can be one event; returns whether it did. */
export type Merge<E> = (pending: E, next: E) => boolean

export class EventQueue<E extends { type: string }> implements AsyncIterable<E> {
  private readonly pending: E[] = []
  private waiter: (() => void) | undefined
  private closed = false

  constructor(private readonly merge?: Merge<E>) {}

  push(event: E): void {
    if (this.closed) return
    if (this.tryMerge(event)) return
    this.pending.push(event)
    this.wakeReader()
  }

  /** No more events after the pending ones (a final event was pushed, or the reader left). */
  end(): void {
    this.closed = true
    this.wakeReader()
  }

  /** Events waiting to be read (for tests and metrics). */
  get size(): number {
    return this.pending.length
  }

  async *[Symbol.asyncIterator](): AsyncIterator<E> {
    for (;;) {
      const next = this.pending.shift()
      if (next !== undefined) {
        yield next
        continue
      }
      if (this.closed) return
      await new Promise<void>((resolve) => (this.waiter = resolve))
    }
  }

  /** Merges into the latest pending event it can join, looking back over events of the same type only. */
  private tryMerge(event: E): boolean {
    if (this.merge === undefined) return false
    for (let i = this.pending.length - 1; i >= 0; i--) {
      const candidate = this.pending[i] as E
      if (candidate.type !== event.type) return false
      if (this.merge(candidate, event)) return true
    }
    return false
  }

  private wakeReader(): void {
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.()
  }
}

type Delta = Extract<GenerationEvent, { type: 'delta' }>

/** Chat: a delta joins the pending delta of its choice. */
export function chatEvents(): EventQueue<GenerationEvent> {
  return new EventQueue<GenerationEvent>((pending, next) => {
    if (pending.type !== 'delta' || next.type !== 'delta' || pending.choice !== next.choice) return false
    mergeDelta(pending, next)
    return true
  })
}

function mergeDelta(pending: Delta, next: Delta): void {
  pending.text += next.text
  pending.tokenIds = [...pending.tokenIds, ...next.tokenIds]
  if (next.logprobs !== undefined) pending.logprobs = [...(pending.logprobs ?? []), ...next.logprobs]
}

/** Images: a progress report replaces the pending report of the same image and phase. */
export function imageEvents(): EventQueue<ImageEvent> {
  return new EventQueue<ImageEvent>((pending, next) => {
    if (
      pending.type !== 'progress' ||
      next.type !== 'progress' ||
      pending.index !== next.index ||
      pending.phase !== next.phase
    )
      return false
    pending.step = next.step
    pending.total = next.total
    return true
  })
}
