/**
 * The one order the scheduler uses everywhere: higher priority first, then
 * earlier arrival, then earlier `add()`. Waiting sequences are admitted from
 * the front; running sequences are served from the front and preempted from
 * the back, so the newest, lowest-priority work always yields first.
 */

export interface Ordered {
  readonly priority: number
  readonly arrivalTime: number
  /** Position in `add()` order; breaks ties between equal arrival times. */
  readonly order: number
}

/** Negative when `a` goes before `b`. */
export function compareOrder(a: Ordered, b: Ordered): number {
  return b.priority - a.priority || a.arrivalTime - b.arrivalTime || a.order - b.order
}

/** An array kept sorted by `compareOrder`; sizes are small (queued requests), so O(n) moves are fine. */
export class OrderedList<T extends Ordered> {
  private readonly items: T[] = []

  get length(): number {
    return this.items.length
  }

  first(): T | undefined {
    return this.items[0]
  }

  last(): T | undefined {
    return this.items.at(-1)
  }

  /** A copy, safe to iterate while the list changes. */
  snapshot(): T[] {
    return [...this.items]
  }

  insert(item: T): void {
    let lo = 0
    let hi = this.items.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (compareOrder(this.items[mid] as T, item) <= 0) lo = mid + 1
      else hi = mid
    }
    this.items.splice(lo, 0, item)
  }

  /** Removes `item` by identity; returns whether it was there. */
  remove(item: T): boolean {
    const index = this.items.indexOf(item)
    if (index < 0) return false
    this.items.splice(index, 1)
    return true
  }

  [Symbol.iterator](): Iterator<T> {
    return this.items[Symbol.iterator]()
  }
}
