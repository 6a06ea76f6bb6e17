/**
 * KV store in host memory. A sequence's cache lives in one of two homes:
 *
 * - its own arrays, one key and one value array per layer laid out
 *   [kv_heads, capacity, head_dim] and grown by doubling, while it prefills
 *   or waits;
 * - a row of the decode batch (see DecodeBatch) while it decodes, so that
 *   consecutive decode steps feed the same past tensors and only write the
 *   new entries.
 *
 * A decode call (every row adds one slot) moves its rows into the batch and
 * any other sequence out of it; any other call (prefill chunks) moves its rows
 * out and gathers them into scratch tensors. Both lay a row's cache out from
 * slot 0, padding after it:
 *
 *   row 0 (A, 6 cached): ■■■■■■
 *   row 1 (B, 4 cached): ■■■■··
 *
 * Only the new entries come back from the graph (`present_delta.*`), so a step
 * never copies the whole cache out of ONNX Runtime. Prompt chunks also go to
 * a PrefixCache, from which later prompts that start the same way are filled.
 */
import ort from 'onnxruntime-node'
import { kvName } from '../graph-signatures.js'
import type { KelixConfig } from '../model-config.js'
import { DecodeBatch } from './decode-batch.js'
import { arraySpan, copyHeads, type Elements, type HeadSpan } from './head-layout.js'
import type { BatchRow, KvStore, PastFeeds } from './kv-store.js'
import { PREFIX_CHUNK, PrefixCache, type ChunkArrays } from './prefix-cache.js'

export interface HostKvStoreOptions {
  /** Positions the prefix cache keeps (whole chunks); 0 turns it off. */
  prefixCachePositions?: number
  /** Past slots a call gets at least (masked when the rows have fewer cached); default 0. */
  minPastSlots?: number
}

/** Default prefix cache: 4,096 positions (16 MiB on the tiny model). */
export const DEFAULT_PREFIX_CACHE_POSITIONS = 4096

/** A sequence's own arrays, one per layer and part (index `2·layer + part`). */
interface OwnCache {
  length: number
  capacity: number
  arrays: Elements[]
}

const MIN_CAPACITY = 32

export class HostKvStore implements KvStore {
  private readonly own = new Map<string, OwnCache>()
  private readonly batch: DecodeBatch
  private readonly scratch = new Map<string, Elements>()
  /** Graph value names per buffer index (`2·layer + part`): inputs, and the two kinds of cache output. */
  private readonly pastNames: string[]
  private readonly outputNames: { delta: string[]; present: string[] }
  private readonly layers: number
  private readonly heads: number
  private readonly dim: number
  private readonly dtype: 'float32' | 'float16'
  private readonly blockSize: number
  private readonly prefixes: PrefixCache
  private readonly minPastSlots: number

  constructor(config: KelixConfig, options: HostKvStoreOptions = {}) {
    this.blockSize = config.block_size
    this.minPastSlots = options.minPastSlots ?? 0
    this.prefixes = new PrefixCache(
      Math.floor((options.prefixCachePositions ?? DEFAULT_PREFIX_CACHE_POSITIONS) / PREFIX_CHUNK),
    )
    this.layers = config.llm.num_layers
    this.heads = config.llm.num_key_value_heads
    this.dim = config.llm.head_dim
    this.dtype = config.llm.kv_dtype
    const names = (kind: 'past' | 'delta' | 'present') =>
      Array.from({ length: this.layers * 2 }, (_, index) => kvName(kind, index >> 1, index % 2 === 0 ? 'key' : 'value'))
    this.pastNames = names('past')
    this.outputNames = { delta: names('delta'), present: names('present') }
    this.batch = new DecodeBatch({
      layers: this.layers,
      heads: this.heads,
      dim: this.dim,
      allocate: (size) => this.allocate(size),
    })
  }

  get sequences(): number {
    return this.own.size + this.batch.rows.length
  }

  get positions(): number {
    let total = this.batch.positions
    for (const c of this.own.values()) total += c.length
    return total
  }

  length(seqId: string): number {
    return this.own.get(seqId)?.length ?? this.batch.length(seqId) ?? 0
  }

  free(seqId: string): void {
    this.own.delete(seqId)
    this.batch.remove(seqId)
  }

  async reusePrefix(seqId: string, ids: Int32Array): Promise<number> {
    if (!this.prefixes.enabled || this.length(seqId) > 0) return 0
    const chunks = this.prefixes.lookup(PrefixCache.keys(ids, this.blockSize))
    if (chunks.length === 0) return 0
    const seq = this.reserve(seqId, chunks.length * PREFIX_CHUNK)
    chunks.forEach((chunk, c) => {
      seq.arrays.forEach((array, index) => {
        copyHeads(
          arraySpan(chunk[index] as Elements, PREFIX_CHUNK),
          arraySpan(array, seq.capacity, c * PREFIX_CHUNK),
          PREFIX_CHUNK,
          this.heads,
          this.dim,
        )
      })
    })
    seq.length = chunks.length * PREFIX_CHUNK
    return seq.length
  }

  get prefixCaching(): boolean {
    return this.prefixes.enabled
  }

  prefixHit(ids: Int32Array): number {
    return this.prefixes.hit(ids, this.blockSize)
  }

  async rememberPrefix(seqId: string, ids: Int32Array): Promise<void> {
    if (!this.prefixes.enabled) return
    const keys = PrefixCache.keysHeld(seqId, ids, this.blockSize, this.length(seqId))
    const own = this.own.get(seqId)
    const source = (index: number): HeadSpan =>
      own === undefined ? this.batch.spanOf(seqId, index) : arraySpan(own.arrays[index] as Elements, own.capacity)
    keys.forEach((key, c) => {
      if (this.prefixes.has(key)) return
      const chunk: ChunkArrays = this.pastNames.map((_, index) => {
        const array = this.allocate(this.heads * PREFIX_CHUNK * this.dim)
        copyHeads(
          { ...source(index), position: c * PREFIX_CHUNK },
          arraySpan(array, PREFIX_CHUNK),
          PREFIX_CHUNK,
          this.heads,
          this.dim,
        )
        return array
      })
      this.prefixes.insert(key, chunk)
    })
  }

  async gather(rows: readonly BatchRow[]): Promise<PastFeeds> {
    return rows.length > 0 && rows.every((r) => r.newSlots === 1) ? this.gatherDecode(rows) : this.gatherScratch(rows)
  }

  async append(
    past: PastFeeds,
    outputs: ort.InferenceSession.OnnxValueMapType,
    layout: { seq: number; fromPresent: boolean },
  ): Promise<void> {
    const time = layout.fromPresent ? past.pastLength + layout.seq : layout.seq
    const position = layout.fromPresent ? past.pastLength : 0
    const data = this.outputNames[layout.fromPresent ? 'present' : 'delta'].map(
      (name) => (outputs[name] as ort.Tensor).data as Elements,
    )
    past.rows.forEach((row, r) => {
      if (row.newSlots === 0) return
      const source = (index: number): HeadSpan => ({
        data: data[index] as Elements,
        offset: r * this.heads * time * this.dim,
        stride: time,
        position,
      })
      if (this.batch.has(row.seqId)) {
        this.batch.append(row.seqId, row.newSlots, source)
        return
      }
      const seq = this.reserve(row.seqId, row.newSlots)
      seq.arrays.forEach((array, index) =>
        copyHeads(source(index), arraySpan(array, seq.capacity, seq.length), row.newSlots, this.heads, this.dim),
      )
      seq.length += row.newSlots
    })
  }

  /** Decode rows: the batch keeps exactly these sequences and feeds its own buffers. */
  private gatherDecode(rows: readonly BatchRow[]): PastFeeds {
    const wanted = new Set(rows.map((r) => r.seqId))
    for (const seqId of [...this.batch.rows]) if (!wanted.has(seqId)) this.moveOut(seqId)
    for (const { seqId } of rows) {
      if (this.batch.has(seqId)) continue
      const seq = this.own.get(seqId)
      this.batch.add(seqId, seq?.length ?? 0, (index) =>
        arraySpan(seq?.arrays[index] ?? this.allocate(0), seq?.capacity ?? 0),
      )
      this.own.delete(seqId)
    }
    this.batch.fit()
    const pastLength = this.batch.slotsPerRow
    const dims = (n: number) => [n, this.heads, pastLength, this.dim]
    const tensors: Record<string, ort.Tensor> = {}
    this.pastNames.forEach(
      (name, index) =>
        (tensors[name] = new ort.Tensor(this.dtype, this.batch.view(index), dims(this.batch.rows.length))),
    )
    return {
      rows: this.batch.rows.map((seqId) => ({ seqId, newSlots: 1 })),
      tensors,
      pastLength,
      cached: [...this.batch.cachedLengths],
    }
  }

  /** Any other call: rows leave the batch and are copied into scratch tensors. */
  private gatherScratch(rows: readonly BatchRow[]): PastFeeds {
    for (const { seqId } of rows) this.moveOut(seqId)
    const cached = rows.map((r) => this.length(r.seqId))
    const pastLength = Math.max(this.minPastSlots, ...cached)
    const rowSize = this.heads * pastLength * this.dim
    const tensors: Record<string, ort.Tensor> = {}
    this.pastNames.forEach((name, index) => {
      const batch = this.scratchFor(name, rows.length * rowSize)
      rows.forEach((row, r) => {
        const seq = this.own.get(row.seqId)
        if (seq === undefined) return
        copyHeads(
          arraySpan(seq.arrays[index] as Elements, seq.capacity),
          { data: batch, offset: r * rowSize, stride: pastLength, position: 0 },
          seq.length,
          this.heads,
          this.dim,
        )
      })
      tensors[name] = new ort.Tensor(this.dtype, batch, [rows.length, this.heads, pastLength, this.dim])
    })
    return { rows, tensors, pastLength, cached }
  }

  /** Moves a sequence from the decode batch back to its own arrays (a no-op when it is not there). */
  private moveOut(seqId: string): void {
    if (!this.batch.has(seqId)) return
    const length = this.batch.length(seqId) as number
    const seq: OwnCache = { length, capacity: capacityFor(length), arrays: [] }
    this.batch.remove(seqId, (index, span) => {
      const array = this.allocate(this.heads * seq.capacity * this.dim)
      copyHeads(span, arraySpan(array, seq.capacity), length, this.heads, this.dim)
      seq.arrays[index] = array
    })
    this.own.set(seqId, seq)
  }

  /** The sequence's own cache with room for `extra` more positions. */
  private reserve(seqId: string, extra: number): OwnCache {
    let seq = this.own.get(seqId)
    if (seq === undefined) {
      seq = { length: 0, capacity: 0, arrays: [] }
      this.own.set(seqId, seq)
    }
    if (seq.length + extra > seq.capacity) this.grow(seq, Math.max(capacityFor(seq.length + extra), seq.capacity * 2))
    return seq
  }

  private grow(seq: OwnCache, capacity: number): void {
    const arrays = Array.from({ length: this.layers * 2 }, (_, index) => {
      const array = this.allocate(this.heads * capacity * this.dim)
      const old = seq.arrays[index]
      if (old !== undefined)
        copyHeads(arraySpan(old, seq.capacity), arraySpan(array, capacity), seq.length, this.heads, this.dim)
      return array
    })
    seq.arrays = arrays
    seq.capacity = capacity
  }

  private allocate(size: number): Elements {
    return this.dtype === 'float16' ? new Uint16Array(size) : new Float32Array(size)
  }

  /** A reused buffer viewed at exactly `size` elements; grows when a call needs more. */
  private scratchFor(name: string, size: number): Elements {
    let buffer = this.scratch.get(name)
    if (buffer === undefined || buffer.length < size) {
      buffer = this.allocate(Math.max(size, (buffer?.length ?? 0) * 2))
      this.scratch.set(name, buffer)
    }
    return buffer.subarray(0, size)
  }
}

function capacityFor(positions: number): number {
  return Math.max(MIN_CAPACITY, positions)
}
