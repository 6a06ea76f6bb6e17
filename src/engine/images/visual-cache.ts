/**
 * Bounded LRU of computed values by key, with in-flight sharing: the same
 * image sent twice, or by two requests at once, is tokenized once.
 */
import { createHash } from 'node:crypto'
import type { ImageDetail } from '../types.js'

/**
 * Cache key of an image: sha256 of its bytes plus the detail level. 'auto'
 * and 'high' plan the same resize, so they share a key.
 */
export function imageCacheKey(bytes: Uint8Array, detail: ImageDetail): string {
  const level = detail === 'low' ? 'low' : 'high'
  return `${createHash('sha256').update(bytes).digest('hex')}:${level}`
}

export interface VisualCacheOptions {
  /** Most completed values kept; the least recently used goes first. 0 keeps none (concurrent misses are still shared). */
  maxEntries: number
}

export class VisualCache<V> {
  /** Completed values; Map order is recency, oldest first. */
  private readonly entries = new Map<string, V>()
  private readonly pending = new Map<string, Promise<V>>()
  private readonly maxEntries: number
  private hitCount = 0
  private missCount = 0

  constructor(options: VisualCacheOptions) {
    if (!(Number.isInteger(options.maxEntries) && options.maxEntries >= 0)) {
      throw new RangeError(`maxEntries must be a non-negative integer, got ${options.maxEntries}`)
    }
    this.maxEntries = options.maxEntries
  }

  /** Lookups answered without a new computation (cached, or joined one in flight). */
  get hits(): number {
    return this.hitCount
  }

  /** Lookups that started a computation. */
  get misses(): number {
    return this.missCount
  }

  /** Completed values held now. */
  get size(): number {
    return this.entries.size
  }

  /**
   * The value for `key`: cached, shared with a computation already running, or
   * computed now. A failed computation rejects every caller that waited on it
   * and is not cached, so the next call tries again.
   */
  getOrCompute(key: string, compute: () => Promise<V>): Promise<V> {
    if (this.entries.has(key)) {
      const value = this.entries.get(key) as V
      this.entries.delete(key)
      this.entries.set(key, value)
      this.hitCount++
      return Promise.resolve(value)
    }
    const running = this.pending.get(key)
    if (running !== undefined) {
      this.hitCount++
      return running
    }
    this.missCount++
    const promise = this.compute(key, compute)
    this.pending.set(key, promise)
    return promise
  }

  private async compute(key: string, compute: () => Promise<V>): Promise<V> {
    try {
      const value = await compute()
      this.store(key, value)
      return value
    } finally {
      this.pending.delete(key)
    }
  }

  private store(key: string, value: V): void {
    if (this.maxEntries === 0) return
    this.entries.set(key, value)
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break
      this.entries.delete(oldest)
    }
  }
}
