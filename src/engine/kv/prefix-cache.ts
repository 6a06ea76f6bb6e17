/**
 * Automatic prefix caching. The cache entries of prompt chunks (PREFIX_CHUNK
 * blocks each) are kept after their sequence ends, under a key hashed over
 * the chunk's block ids and the key of the chunk before it, so a chunk
 * matches only when the whole prompt up to its end matches:
 *
 *   prompt A: [system prompt ·········|·· question A ··]
 *   prompt B: [system prompt ·········|·· question B ········]
 *              chunk 0 (key k0)  chunk 1 (k1 = h(k0, ids))  → B reuses chunk 0
 *
 * A new sequence copies the longest cached run of its prompt into its own
 * cache and computes only the rest. Least recently used chunks go first once
 * the cache holds its capacity.
 */
import { createHash } from 'node:crypto'
import type { Elements } from './head-layout.js'

/**
 * Blocks per cached chunk. Half vLLM's default block of 16: the copy costs the
 * same per position, and a shared system prompt and template rarely end on a
 * multiple of 16 (the bench's 28 shared positions: 16 reused at 16, 24 at 8,
 * which took its concurrency-32 throughput from 4.2x to 4.6x that of one
 * sequence at a time with 32-token answers).
 */
export const PREFIX_CHUNK = 8

/** Per layer and part (index `2·layer + part`), [heads, PREFIX_CHUNK, dim]. */
export type ChunkArrays = Elements[]

/** Chunks of type `C` (host arrays, or device tensors that `release` frees when a chunk is evicted). */
export class PrefixCache<C = ChunkArrays> {
  /** Map order is recency order: a hit moves its key to the end. */
  private readonly chunks = new Map<string, C>()

  constructor(
    private readonly capacityChunks: number,
    private readonly release: (chunk: C) => void = () => {},
  ) {}

  get size(): number {
    return this.chunks.size
  }

  get enabled(): boolean {
    return this.capacityChunks > 0
  }

  /** Keys of the whole chunks in `ids` (flat block ids, block_size per block). */
  static keys(ids: Int32Array, blockSize: number): string[] {
    const chunkIds = PREFIX_CHUNK * blockSize
    const keys: string[] = []
    let previous = ''
    for (let start = 0; start + chunkIds <= ids.length; start += chunkIds) {
      const chunk = ids.subarray(start, start + chunkIds)
      previous = createHash('sha256')
        .update(previous)
        .update(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))
        .digest('base64')
      keys.push(previous)
    }
    return keys
  }

  /** Positions of `ids` the cache would fill now: its longest run of whole chunks from the first. */
  hit(ids: Int32Array, blockSize: number): number {
    return this.enabled ? this.lookup(PrefixCache.keys(ids, blockSize)).length * PREFIX_CHUNK : 0
  }

  /** Keys of the chunks of `ids` a sequence holding `held` positions offers; throws when it holds fewer. */
  static keysHeld(seqId: string, ids: Int32Array, blockSize: number, held: number): string[] {
    const keys = PrefixCache.keys(ids, blockSize)
    if (keys.length * PREFIX_CHUNK > held)
      throw new Error(`${seqId} holds ${held} positions, fewer than the ${keys.length * PREFIX_CHUNK} to remember`)
    return keys
  }

  /** The cached chunks for the longest run of `keys` from the first. */
  lookup(keys: readonly string[]): C[] {
    const found: C[] = []
    for (const key of keys) {
      const chunk = this.chunks.get(key)
      if (chunk === undefined) break
      this.chunks.delete(key)
      this.chunks.set(key, chunk)
      found.push(chunk)
    }
    return found
  }

  has(key: string): boolean {
    return this.chunks.has(key)
  }

  insert(key: string, chunk: C): void {
    if (!this.enabled || this.chunks.has(key)) return this.release(chunk)
    this.chunks.set(key, chunk)
    for (const [oldest, evicted] of this.chunks) {
      if (this.chunks.size <= this.capacityChunks) break
      this.chunks.delete(oldest)
      this.release(evicted)
    }
  }
}
