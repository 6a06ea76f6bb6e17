/**
 * A growable list of blocks, `block_size` ids each, stored flat:
 *
 *   [ t  eob eob … eob | c0 c1 … c7 eob | … ]
 *     text block         image block
 */
export class BlockBuffer {
  private data: Int32Array
  private count = 0

  constructor(
    private readonly blockSize: number,
    private readonly eob: number,
    initialBlocks = 64,
  ) {
    this.data = new Int32Array(initialBlocks * blockSize)
  }

  /** Blocks held. */
  get length(): number {
    return this.count
  }

  /** Appends a block from its ids before <eob> (1 … block_size − 1 of them). */
  push(ids: ArrayLike<number>): void {
    if (ids.length === 0 || ids.length >= this.blockSize)
      throw new RangeError(`a block holds 1..${this.blockSize - 1} ids before <eob>, got ${ids.length}`)
    this.ensure(this.count + 1)
    const start = this.count * this.blockSize
    for (let i = 0; i < this.blockSize; i++) this.data[start + i] = i < ids.length ? (ids[i] as number) : this.eob
    this.count++
  }

  /** An independent copy (each choice of an n > 1 request extends its own). */
  clone(): BlockBuffer {
    const copy = new BlockBuffer(this.blockSize, this.eob, Math.max(1, this.count))
    copy.data.set(this.data.subarray(0, this.count * this.blockSize))
    copy.count = this.count
    return copy
  }

  /** A view of `count` blocks from block `from` (valid until the next push). */
  view(from: number, count: number): Int32Array {
    return this.data.subarray(from * this.blockSize, (from + count) * this.blockSize)
  }

  /** The first id of block `index`. */
  firstId(index: number): number {
    return this.data[index * this.blockSize] as number
  }

  private ensure(blocks: number): void {
    if (blocks * this.blockSize <= this.data.length) return
    const grown = new Int32Array(Math.max(blocks, (this.data.length / this.blockSize) * 2) * this.blockSize)
    grown.set(this.data)
    this.data = grown
  }
}
