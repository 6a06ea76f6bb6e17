/**
 * One request's events for the API layer, as an async iterable that never
 * makes the engine wait: when the reader is slow, a new delta merges into the
 * pending delta of its choice, so the queue holds at most one delta per choice
 * (plus the final events) however far behind the reader is.
 */
import type { GenerationEvent } from './client-types.js'

type Delta = Extract<GenerationEvent, { type: 'delta' }>

export class EventQueue implements AsyncIterable<GenerationEvent> {
  private readonly pending: GenerationEvent[] = []
  private waiter: (() => void) | undefined
  private closed = false

  push(event: GenerationEvent): void {
    if (this.closed) return
    if (event.type === 'delta' && this.mergeDelta(event)) return
    this.pending.push(event.type === 'delta' ? { ...event, tokenIds: [...event.tokenIds], logprobs: event.logprobs && [...event.logprobs] } : event)
    this.wakeReader()
  }

  /** No more events after the pending ones (a `done` or `error` was pushed, or the reader left). */
  end(): void {
    this.closed = true
    this.wakeReader()
  }

  /** Events waiting to be read (for tests and metrics). */
  get size(): number {
    return this.pending.length
  }

  async *[Symbol.asyncIterator](): AsyncIterator<GenerationEvent> {
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

  /** Appends to the pending delta of the same choice, unless a non-delta event follows it. */
  private mergeDelta(event: Delta): boolean {
    let last: Delta | undefined
    for (let i = this.pending.length - 1; i >= 0 && last === undefined; i--) {
      const candidate = this.pending[i] as GenerationEvent
      if (candidate.type !== 'delta') return false
      if (candidate.choice === event.choice) last = candidate
    }
    if (last === undefined) return false
    last.text += event.text
    last.tokenIds.push(...event.tokenIds)
    if (event.logprobs !== undefined) last.logprobs = [...(last.logprobs ?? []), ...event.logprobs]
    return true
  }

  private wakeReader(): void {
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.()
  }
}
