/**
 * KV store on the GPU (WebGPU). The cache never visits the host: decoder.onnx
 * leaves its `present_delta.*` outputs on the device, and this store moves
 * them into place with the small graphs of DeviceKvOps, whose outputs stay on
 * the device too. Only control tensors go up (slot masks, row indices), and
 * only the hidden states come back (decoder.onnx returns them to the host).
 *
 * The layout mirrors HostKvStore: a sequence's cache is either its own tensors
 * ([1, h, length, d], exactly its length) while it prefills or waits, or a row
 * of the decode batch ([rows, h, slots, d], cache from slot 0, padding after):
 *
 *   decode step   write: each row's new entry lands at its own slot (one call)
 *   a row joins   its own tensors, padded to the batch's slots, concatenated after the rows
 *   a row leaves  Gather of the rows that stay (and a slice of its row, when it lives on)
 *   a prefill     its own tensors fed as they are; its deltas' first slots concatenated after
 *
 * Each of these is a device-to-device copy of the tensors it touches; a
 * decode step copies the batch's cache once (as Concat inside a graph would).
 * Tensors replaced are disposed at once: GPU memory is not garbage collected.
 *
 * Prompt prefixes are kept on the device too, as HostKvStore keeps them: a
 * chunk is a slice of a sequence's cache, and a later prompt's cache starts as
 * its cached chunks concatenated (pairwise, so n chunks cost log n copies of
 * the prefix, not n).
 */
import type ort from 'onnxruntime-node'
import { kvName } from '../graph-signatures.js'
import type { KelixConfig } from '../model-config.js'
import { slotsFor } from './decode-batch.js'
import type { DeviceKvOps } from './device-kv-ops.js'
import { DEFAULT_PREFIX_CACHE_POSITIONS } from './host-kv-store.js'
import type { BatchRow, KvStore, PastFeeds } from './kv-store.js'
import { PREFIX_CHUNK, PrefixCache } from './prefix-cache.js'

/** A sequence's cache outside the batch: one tensor per layer and part, [1, h, length, d]; none while empty. */
interface OwnCache {
  length: number
  tensors: ort.Tensor[]
}

export class DeviceKvStore implements KvStore {
  private readonly own = new Map<string, OwnCache>()
  /** The decode batch: sequence per row, its cached length, and [rows, h, slots, d] tensors. */
  private batch: { seqIds: string[]; lengths: number[]; slots: number; tensors: ort.Tensor[] } = emptyBatch()
  /** Tensors built for the current call only (a padded or concatenated prefill past). */
  private temporaries: ort.Tensor[] = []
  /** Whether the current call's past is the decode batch. */
  private decodeCall = false
  private readonly pastNames: string[]
  private readonly deltaNames: string[]
  private readonly blockSize: number
  /** Prompt chunks: [1, h, PREFIX_CHUNK, d] device tensors per layer and part. */
  private readonly prefixes: PrefixCache<ort.Tensor[]>

  constructor(
    config: KelixConfig,
    private readonly ops: DeviceKvOps,
    options: { prefixCachePositions?: number } = {},
  ) {
    this.blockSize = config.block_size
    this.prefixes = new PrefixCache<ort.Tensor[]>(
      Math.floor((options.prefixCachePositions ?? DEFAULT_PREFIX_CACHE_POSITIONS) / PREFIX_CHUNK),
      dispose,
    )
    const names = (kind: 'past' | 'delta') =>
      Array.from({ length: config.llm.num_layers * 2 }, (_, index) =>
        kvName(kind, index >> 1, index % 2 === 0 ? 'key' : 'value'),
      )
    this.pastNames = names('past')
    this.deltaNames = names('delta')
  }

  get sequences(): number {
    return this.own.size + this.batch.seqIds.filter((seqId) => seqId !== '').length
  }

  get positions(): number {
    let total = this.batch.lengths.reduce((a, b) => a + b, 0)
    for (const c of this.own.values()) total += c.length
    return total
  }

  length(seqId: string): number {
    const row = this.batch.seqIds.indexOf(seqId)
    return row >= 0 ? (this.batch.lengths[row] as number) : (this.own.get(seqId)?.length ?? 0)
  }

  /**
   * Forgets a sequence. A batch row is only marked (its id blanked): the next
   * call's gather drops it, so that a free between two calls copies nothing.
   */
  free(seqId: string): void {
    const own = this.own.get(seqId)
    if (own !== undefined) dispose(own.tensors)
    this.own.delete(seqId)
    const row = this.batch.seqIds.indexOf(seqId)
    if (row >= 0) {
      this.batch.seqIds[row] = ''
      this.batch.lengths[row] = 0
    }
  }

  get prefixCaching(): boolean {
    return this.prefixes.enabled
  }

  prefixHit(ids: Int32Array): number {
    return this.prefixes.hit(ids, this.blockSize)
  }

  async reusePrefix(seqId: string, ids: Int32Array): Promise<number> {
    if (!this.prefixes.enabled || this.length(seqId) > 0) return 0
    const chunks = this.prefixes.lookup(PrefixCache.keys(ids, this.blockSize))
    if (chunks.length === 0) return 0
    // The cache keeps its chunks: the sequence gets a copy (one chunk padded by nothing is a copy).
    const tensors =
      chunks.length === 1 ? await this.ops.pad(chunks[0] as ort.Tensor[], 0) : await this.concatAll(chunks, 'slots')
    const length = chunks.length * PREFIX_CHUNK
    this.own.set(seqId, { length, tensors })
    return length
  }

  async rememberPrefix(seqId: string, ids: Int32Array): Promise<void> {
    if (!this.prefixes.enabled) return
    const keys = PrefixCache.keysHeld(seqId, ids, this.blockSize, this.length(seqId))
    const row = this.batch.seqIds.indexOf(seqId)
    const source = row >= 0 ? this.batch.tensors : (this.own.get(seqId) as OwnCache).tensors
    for (const [c, key] of keys.entries()) {
      if (this.prefixes.has(key)) continue
      this.prefixes.insert(
        key,
        await this.ops.slice(source, oneRow(Math.max(row, 0)), [c * PREFIX_CHUNK, (c + 1) * PREFIX_CHUNK]),
      )
    }
  }

  async gather(rows: readonly BatchRow[]): Promise<PastFeeds> {
    this.decodeCall = rows.length > 0 && rows.every((r) => r.newSlots === 1)
    return this.decodeCall ? this.gatherDecode(rows) : this.gatherPrefill(rows)
  }

  async append(
    past: PastFeeds,
    outputs: ort.InferenceSession.OnnxValueMapType,
    layout: { seq: number; fromPresent: boolean },
  ): Promise<void> {
    if (layout.fromPresent) throw new Error('the device KV store needs a decoder with present_delta outputs')
    const deltas = this.deltaNames.map((name) => outputs[name] as ort.Tensor)
    try {
      if (this.decodeCall) {
        const written = await this.ops.write(this.batch.tensors, deltas, this.batch.lengths)
        this.replaceBatchTensors(written)
        this.batch.lengths = this.batch.lengths.map((length) => length + 1)
        return
      }
      for (const [r, row] of past.rows.entries()) {
        if (row.newSlots === 0) continue
        const piece = await this.ops.slice(deltas, oneRow(r), [0, row.newSlots])
        const own = this.own.get(row.seqId)
        if (own === undefined || own.length === 0) {
          this.own.set(row.seqId, { length: row.newSlots, tensors: piece })
          continue
        }
        const joined = await this.ops.concat(own.tensors, piece, 'slots')
        dispose(piece)
        dispose(own.tensors)
        this.own.set(row.seqId, { length: own.length + row.newSlots, tensors: joined })
      }
    } finally {
      dispose(deltas)
      dispose(this.temporaries)
      this.temporaries = []
    }
  }

  /** Decode rows: the batch keeps exactly these sequences (rows that leave go back to their own tensors). */
  private async gatherDecode(rows: readonly BatchRow[]): Promise<PastFeeds> {
    const wanted = new Set(rows.map((r) => r.seqId))
    const keep: number[] = []
    for (const [row, seqId] of this.batch.seqIds.entries()) {
      if (wanted.has(seqId)) keep.push(row)
      else if (seqId !== '') await this.moveOut(row)
    }
    if (keep.length < this.batch.seqIds.length) await this.keepRows(keep)
    const joining = rows.filter((r) => !this.batch.seqIds.includes(r.seqId)).map((r) => r.seqId)
    const longest = Math.max(0, ...this.batch.lengths, ...joining.map((seqId) => this.own.get(seqId)?.length ?? 0))
    await this.fitSlots(slotsFor(longest + 1))
    for (const seqId of joining) await this.join(seqId)
    const tensors: Record<string, ort.Tensor> = {}
    this.pastNames.forEach((name, index) => (tensors[name] = this.batch.tensors[index] as ort.Tensor))
    return {
      rows: this.batch.seqIds.map((seqId) => ({ seqId, newSlots: 1 })),
      tensors,
      pastLength: this.batch.slots,
      cached: [...this.batch.lengths],
    }
  }

  /** Prefill rows: each leaves the batch; their own tensors, padded to the longest, one under the other. */
  private async gatherPrefill(rows: readonly BatchRow[]): Promise<PastFeeds> {
    const inBatch = rows.map((r) => this.batch.seqIds.indexOf(r.seqId)).filter((row) => row >= 0)
    for (const row of inBatch) await this.moveOut(row)
    if (inBatch.length > 0) await this.keepRows(this.batch.seqIds.flatMap((id, r) => (id === '' ? [] : [r])))
    const cached = rows.map((r) => this.own.get(r.seqId)?.length ?? 0)
    // One masked slot at least: an empty past crashes the WebGPU provider.
    const pastLength = Math.max(1, ...cached)
    const padded: ort.Tensor[][] = []
    for (const [r, row] of rows.entries())
      padded.push(await this.padded(this.own.get(row.seqId), cached[r] as number, pastLength))
    const stacked = await this.concatAll(padded, 'rows')
    if (!padded.includes(stacked)) this.temporaries.push(...stacked)
    const tensors: Record<string, ort.Tensor> = {}
    this.pastNames.forEach((name, index) => (tensors[name] = stacked[index] as ort.Tensor))
    return { rows, tensors, pastLength, cached }
  }

  /** A sequence's own tensors at `slots` slots: as they are, padded, or zeros when it has none (temporaries). */
  private async padded(own: OwnCache | undefined, length: number, slots: number): Promise<ort.Tensor[]> {
    if (own !== undefined && length === slots) return own.tensors
    const result =
      own === undefined || length === 0 ? this.ops.zeros(1, slots) : await this.ops.pad(own.tensors, slots - length)
    this.temporaries.push(...result)
    return result
  }

  /** Appends a sequence's own cache (maybe empty) as a new batch row. */
  private async join(seqId: string): Promise<void> {
    const own = this.own.get(seqId)
    const length = own?.length ?? 0
    // fitSlots left every row room for one more entry, so a joining cache is always padded (zeros when empty).
    const row =
      own === undefined || length === 0
        ? this.ops.zeros(1, this.batch.slots)
        : await this.ops.pad(own.tensors, this.batch.slots - length)
    if (this.batch.seqIds.length === 0) this.replaceBatchTensors(row)
    else {
      const joined = await this.ops.concat(this.batch.tensors, row, 'rows')
      dispose(row)
      this.replaceBatchTensors(joined)
    }
    if (own !== undefined) dispose(own.tensors)
    this.own.delete(seqId)
    this.batch.seqIds.push(seqId)
    this.batch.lengths.push(length)
  }

  /** Copies batch row `row` back to its sequence's own tensors (only its cached slots). */
  private async moveOut(row: number): Promise<void> {
    const seqId = this.batch.seqIds[row] as string
    const length = this.batch.lengths[row] as number
    const tensors = length === 0 ? [] : await this.ops.slice(this.batch.tensors, oneRow(row), [0, length])
    this.own.set(seqId, { length, tensors })
    this.batch.seqIds[row] = ''
  }

  /** Keeps only batch rows `keep`, in that order (freed and moved-out rows go). */
  private async keepRows(keep: readonly number[]): Promise<void> {
    const seqIds = keep.map((r) => this.batch.seqIds[r] as string)
    const lengths = keep.map((r) => this.batch.lengths[r] as number)
    if (keep.length === 0) {
      this.replaceBatchTensors([])
      this.batch = emptyBatch()
      return
    }
    this.replaceBatchTensors(await this.ops.rows(this.batch.tensors, keep))
    this.batch.seqIds = seqIds
    this.batch.lengths = lengths
  }

  /** Resizes the batch's slots to `slots` when it must grow, or when it uses less than half of them. */
  private async fitSlots(slots: number): Promise<void> {
    const current = this.batch.slots
    if (slots === current || (slots < current && slots * 2 > current)) return
    const { tensors, seqIds } = this.batch
    if (seqIds.length > 0)
      this.replaceBatchTensors(
        slots > current
          ? await this.ops.pad(tensors, slots - current)
          : await this.ops.slice(tensors, [0, seqIds.length], [0, slots]),
      )
    this.batch.slots = slots
  }

  /**
   * The parts joined along `axis`, pairwise, so n parts cost log n copies of
   * the whole instead of n; results in between are freed, the parts are not
   * (one part is returned as it is).
   */
  private async concatAll(parts: readonly ort.Tensor[][], axis: 'rows' | 'slots'): Promise<ort.Tensor[]> {
    let level = [...parts]
    while (level.length > 1) {
      const next: ort.Tensor[][] = []
      for (let i = 0; i < level.length; i += 2) {
        const [a, b] = [level[i] as ort.Tensor[], level[i + 1]]
        if (b === undefined) next.push(a)
        else {
          next.push(await this.ops.concat(a, b, axis))
          for (const made of [a, b]) if (!parts.includes(made)) dispose(made)
        }
      }
      level = next
    }
    return level[0] as ort.Tensor[]
  }

  private replaceBatchTensors(tensors: ort.Tensor[]): void {
    dispose(this.batch.tensors)
    this.batch.tensors = tensors
  }
}

/** The row range of row `row` alone. */
const oneRow = (row: number): [number, number] => [row, row + 1]

function emptyBatch() {
  return { seqIds: [] as string[], lengths: [] as number[], slots: 0, tensors: [] as ort.Tensor[] }
}

/** Frees device tensors now; host tensors (uploads) have nothing to free. */
function dispose(tensors: readonly ort.Tensor[]): void {
  for (const t of tensors) if (t.location === 'gpu-buffer') t.dispose()
}
