/**
 * The decode rows of consecutive steps, kept laid out between steps so that a
 * decode step does not rebuild its past tensors. Every row owns `slots`
 * positions per head; its cache fills the first ones and each step's new entry
 * is written right after them, in place:
 *
 *   row 0 (A, 5 cached): ■■■■■□□□   slots = 8 (a multiple of SLOT_BUCKET)
 *   row 1 (B, 3 cached): ■■■□□□□□   □ padding, masked by attention_mask
 *
 * Membership changes at the edges: a leaving row is replaced by the last one
 * (one row copied), a joining row is appended (its cache copied in once). The
 * layout is rebuilt only when the longest row outgrows the slots (one bucket
 * more) or uses less than half of them.
 */
import { copyHeads, type Elements, type HeadSpan } from './head-layout.js'

/** Slots grow and shrink in steps of this many positions. */
export const SLOT_BUCKET = 32

export interface CacheShape {
  layers: number
  heads: number
  dim: number
  allocate(size: number): Elements
}

export class DecodeBatch {
  private seqIds: string[] = []
  private lengths: number[] = []
  private readonly rowOf = new Map<string, number>()
  private slots = 0
  private rowCapacity = 0
  /** One per layer and part (index `2·layer + part`), [rowCapacity, heads, slots, dim]. */
  private buffers: Elements[] = []

  constructor(private readonly shape: CacheShape) {}

  has(seqId: string): boolean {
    return this.rowOf.has(seqId)
  }

  length(seqId: string): number | undefined {
    const row = this.rowOf.get(seqId)
    return row === undefined ? undefined : this.lengths[row]
  }

  /** Sequence ids in row order. */
  get rows(): readonly string[] {
    return this.seqIds
  }

  get cachedLengths(): readonly number[] {
    return this.lengths
  }

  get slotsPerRow(): number {
    return this.slots
  }

  get positions(): number {
    return this.lengths.reduce((a, b) => a + b, 0)
  }

  /** Appends a row whose first `length` positions are copied from `source(index)`. */
  add(seqId: string, length: number, source: (index: number) => HeadSpan): void {
    if (this.rowOf.has(seqId)) throw new Error(`sequence ${seqId} is already in the decode batch`)
    this.layout(Math.max(this.seqIds.length + 1, this.rowCapacity), Math.max(this.slots, slotsFor(length + 1)))
    const row = this.seqIds.length
    this.seqIds.push(seqId)
    this.lengths.push(length)
    this.rowOf.set(seqId, row)
    this.buffers.forEach((buffer, index) =>
      copyHeads(source(index), this.span(buffer, row, 0), length, this.shape.heads, this.shape.dim),
    )
  }

  /** Removes a row; `keep` first receives its cache when the sequence lives on elsewhere. */
  remove(seqId: string, keep?: (index: number, span: HeadSpan, length: number) => void): void {
    const row = this.rowOf.get(seqId)
    if (row === undefined) return
    const length = this.lengths[row] as number
    if (keep !== undefined) this.buffers.forEach((buffer, index) => keep(index, this.span(buffer, row, 0), length))
    const last = this.seqIds.length - 1
    if (row !== last) {
      const rowSize = this.rowSize()
      for (const buffer of this.buffers) buffer.copyWithin(row * rowSize, last * rowSize, (last + 1) * rowSize)
      const moved = this.seqIds[last] as string
      this.seqIds[row] = moved
      this.lengths[row] = this.lengths[last] as number
      this.rowOf.set(moved, row)
    }
    this.seqIds.pop()
    this.lengths.pop()
    this.rowOf.delete(seqId)
    if (this.seqIds.length === 0) this.release()
  }

  /** Fits the slots to the rows: room for one more entry each, within a bucket of need. */
  fit(): void {
    const need = slotsFor(Math.max(0, ...this.lengths) + 1)
    if (need > this.slots || need * 2 <= this.slots) this.layout(this.rowCapacity, need)
  }

  /** The batch buffer `index` viewed as a [rows, heads, slots, dim] tensor's data. */
  view(index: number): Elements {
    return (this.buffers[index] as Elements).subarray(0, this.seqIds.length * this.rowSize())
  }

  /** Copies `count` new positions of row `seqId` from `source(index)` after its cache. */
  append(seqId: string, count: number, source: (index: number) => HeadSpan): void {
    const row = this.rowOf.get(seqId)
    if (row === undefined) throw new Error(`sequence ${seqId} is not in the decode batch`)
    const length = this.lengths[row] as number
    if (length + count > this.slots) this.layout(this.rowCapacity, slotsFor(length + count))
    this.buffers.forEach((buffer, index) =>
      copyHeads(source(index), this.span(buffer, row, length), count, this.shape.heads, this.shape.dim),
    )
    this.lengths[row] = length + count
  }

  /** Where row `seqId`'s cache starts in buffer `index`. */
  spanOf(seqId: string, index: number): HeadSpan {
    const row = this.rowOf.get(seqId)
    if (row === undefined) throw new Error(`sequence ${seqId} is not in the decode batch`)
    return this.span(this.buffers[index] as Elements, row, 0)
  }

  private span(buffer: Elements, row: number, position: number): HeadSpan {
    return { data: buffer, offset: row * this.rowSize(), stride: this.slots, position }
  }

  private rowSize(): number {
    return this.shape.heads * this.slots * this.shape.dim
  }

  /** Re-lays the buffers out for `rows` rows of `slots` slots when either changes. */
  private layout(rows: number, slots: number): void {
    const rowCapacity = rows > this.rowCapacity ? Math.max(rows, this.rowCapacity * 2, 4) : this.rowCapacity
    if (rowCapacity === this.rowCapacity && slots === this.slots) return
    const size = rowCapacity * this.shape.heads * slots * this.shape.dim
    const buffers = Array.from({ length: this.shape.layers * 2 }, () => this.shape.allocate(size))
    const { heads, dim } = this.shape
    const newRowSize = heads * slots * dim
    this.buffers.forEach((old, index) => {
      this.lengths.forEach((length, row) => {
        copyHeads(
          this.span(old, row, 0),
          { data: buffers[index] as Elements, offset: row * newRowSize, stride: slots, position: 0 },
          length,
          heads,
          dim,
        )
      })
    })
    this.buffers = buffers
    this.rowCapacity = rowCapacity
    this.slots = slots
  }

  private release(): void {
    this.buffers = []
    this.rowCapacity = 0
    this.slots = 0
  }
}

/** Slots for `positions` positions: whole buckets, one at least. */
export function slotsFor(positions: number): number {
  return Math.max(1, Math.ceil(positions / SLOT_BUCKET)) * SLOT_BUCKET
}
