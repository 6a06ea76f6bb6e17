/** An async iterable a test feeds by hand: items wait until they are read, reading waits until an item or the end comes. */
export class EventQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = []
  private ended = false
  private wake: (() => void) | undefined
  private readonly endWaiters: Array<() => void> = []

  push(...items: T[]): void {
    if (this.ended) return
    this.items.push(...items)
    this.wake?.()
  }

  /** No more items; a reader gets those already pushed, then stops. Idempotent. */
  end(): void {
    if (this.ended) return
    this.ended = true
    this.wake?.()
    for (const resolve of this.endWaiters.splice(0)) resolve()
  }

  get isEnded(): boolean {
    return this.ended
  }

  /** Resolves once `end` was called. */
  whenEnded(): Promise<void> {
    return this.ended ? Promise.resolve() : new Promise((resolve) => this.endWaiters.push(resolve))
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      if (this.items.length > 0) {
        yield this.items.shift() as T
        continue
      }
      if (this.ended) return
      await new Promise<void>((resolve) => (this.wake = resolve))
      this.wake = undefined
    }
  }
}
