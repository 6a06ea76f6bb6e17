/**
 * The graphs' weights, read from a checkpoint as the graphs are written.
 *
 * Every request checks the stored shape at once (so a converter finds a
 * missing or mis-shaped key before it writes anything) and returns a producer
 * that reads the rows later, a bounded piece at a time: a copied tensor in
 * pieces of 16 Mi values (64 MiB of float32), a transposed one in pieces of
 * 256 Mi values (1 GiB), the piece and its transpose in memory
 * at once. Transposed pieces are large because each one is written as one
 * scattered write per output row: a Kelix-8B MLP weight is then one piece and
 * one write, and the 2.5 GB text part of the LM head three pieces of 4,096
 * writes (with 64 MiB pieces the decoder took 2.6 M small writes; measured in
 * `npm run bench -- --mode convert`). A weight quantized for MatMulNBits is read
 * as stored (`storedLinear`, `rows`), in copy pieces of whole rows, each
 * quantized as it comes (src/builder/quantize.ts): no transpose at all.
 */
import type { CheckpointWeights } from '../builder/weights.js'
import { elementCount, type PutValues, type TensorData } from '../builder/tensor-data.js'
import type { Checkpoint } from './checkpoint.js'

/** Values per piece read and written at a time (see above); tests make them small. */
export interface PieceSizes {
  copy: number
  transpose: number
}

const PIECES: PieceSizes = { copy: 16 * 1024 * 1024, transpose: 256 * 1024 * 1024 }

export class CheckpointTensors implements CheckpointWeights {
  /** Every key a graph asked for: what the checkpoint holds beyond them is reported as unused. */
  readonly used = new Set<string>()
  /** Keys of which only some rows are read (the slot table, the frozen quantizer tables): rows read of rows stored. */
  readonly partlyUsed = new Map<string, { rows: number; of: number }>()

  constructor(
    private readonly checkpoint: Checkpoint,
    /** Says which config field implies the shape, for shape errors. */
    private readonly why: (key: string) => string | undefined = () => undefined,
    private readonly pieces: PieceSizes = PIECES,
  ) {}

  linear(key: string, inDim: number, outDim: number): TensorData {
    return this.transposed(key, [outDim, inDim])
  }

  storedLinear(key: string, inDim: number, outDim: number): TensorData {
    return this.tensor(key, [outDim, inDim])
  }

  bias(key: string, dim: number): TensorData {
    return this.tensor(key, [dim])
  }

  scale(key: string, dim: number): TensorData {
    return this.tensor(key, [dim])
  }

  tensor(key: string, shape: readonly number[]): TensorData {
    this.check(key, shape)
    return this.rows(key, shape, 0, shape[0] ?? 1)
  }

  rows(key: string, shape: readonly number[], lo: number, hi: number): TensorData {
    this.check(key, shape)
    this.notePart(key, hi - lo, shape[0] ?? 1)
    const width = elementCount(shape.slice(1))
    const dims = [hi - lo, ...shape.slice(1)]
    return {
      dims,
      write: (put) =>
        this.eachPiece(key, lo, hi, width, this.pieces.copy, (first, values) => put((first - lo) * width, values)),
    }
  }

  transposed(key: string, shape: readonly number[], rows: readonly [number, number] = [0, shape[0] ?? 1]): TensorData {
    this.check(key, shape)
    const [lo, hi] = rows
    this.notePart(key, hi - lo, shape[0] ?? 1)
    const width = elementCount(shape.slice(1))
    const count = hi - lo
    return {
      dims: [width, count],
      write: (put) =>
        this.eachPiece(key, lo, hi, width, this.pieces.transpose, (first, values) =>
          putTransposed(put, values, first - lo, values.length / width, width, count),
        ),
    }
  }

  private notePart(key: string, rows: number, of: number): void {
    const read = (this.partlyUsed.get(key)?.rows ?? 0) + rows
    if (read < of) this.partlyUsed.set(key, { rows: read, of })
    else this.partlyUsed.delete(key)
  }

  private check(key: string, shape: readonly number[]): void {
    this.checkpoint.expectShape(key, shape, this.why(key))
    this.used.add(key)
  }

  /** Reads rows [lo, hi) in pieces of at most `piece` values (at least one row). */
  private async eachPiece(
    key: string,
    lo: number,
    hi: number,
    width: number,
    piece: number,
    use: (first: number, values: Float32Array) => Promise<void>,
  ): Promise<void> {
    const step = Math.max(1, Math.floor(piece / Math.max(1, width)))
    for (let first = lo; first < hi; first += step) {
      const count = Math.min(step, hi - first)
      await use(first, await this.checkpoint.readRows(key, first, count))
    }
  }
}

/**
 * Writes rows [first, first + rows) of a [*, width] matrix into its [width, total]
 * transpose: one put per output row, or one put when the piece is the whole matrix.
 */
async function putTransposed(
  put: PutValues,
  values: Float32Array,
  first: number,
  rows: number,
  width: number,
  total: number,
): Promise<void> {
  const block = transpose(values, rows, width)
  if (rows === total) return put(0, block)
  for (let c = 0; c < width; c++) await put(c * total + first, block.subarray(c * rows, (c + 1) * rows))
}

/** Tile side of the transpose: a tile's rows and columns stay in cache (about 4× faster than a plain double loop). */
const TILE = 64

/** The [width, rows] transpose of a row-major [rows, width] matrix. */
function transpose(values: Float32Array, rows: number, width: number): Float32Array {
  const out = new Float32Array(values.length)
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(rows, r0 + TILE)
    for (let c0 = 0; c0 < width; c0 += TILE) {
      const c1 = Math.min(width, c0 + TILE)
      for (let r = r0; r < r1; r++) {
        for (let c = c0; c < c1; c++) out[c * rows + r] = values[r * width + c] as number
      }
    }
  }
  return out
}
