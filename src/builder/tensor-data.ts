/**
 * The values of a graph weight, produced when the graph is written rather
 * than when it is built. A converted checkpoint's weights are read from their
 * shards piece by piece while the graph's external data file is written, so
 * no graph ever holds its weights in memory.
 *
 * Values are float32 unless said otherwise: a stored weight may also be
 * float16 (as its bits, an embedding table) or bytes (MatMulNBits' packed codes).
 */

/** The element arrays a producer yields: float32 values, float16 bits, bytes. */
export type Elements = Float32Array | Uint16Array | Uint8Array

/** Places `values` at element `at` of the row-major result. */
export type PutValues<V extends Elements = Float32Array> = (at: number, values: V) => Promise<void>

export interface TensorData<V extends Elements = Float32Array> {
  readonly dims: readonly number[]
  /**
   * Calls `put` for pieces that together cover the tensor exactly once, in any
   * order, awaiting each before producing the next: a producer holds at most
   * one piece (and what it needs to make it) at a time.
   */
  write(put: PutValues<V>): Promise<void>
}

export function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1)
}

/** A tensor already in memory. */
export function inMemory(dims: readonly number[], values: Float32Array): TensorData {
  if (values.length !== elementCount(dims)) throw new Error(`${values.length} values for shape [${dims.join(', ')}]`)
  return { dims, write: (put) => put(0, values) }
}
/** Collects a tensor's values into one array (tests, and small tables a precomputation reads). */
export async function collect(tensor: TensorData): Promise<Float32Array> {
  const out = new Float32Array(elementCount(tensor.dims))
  await tensor.write(async (at, values) => {
    out.set(values, at)
  })
  return out
}

/** The same values under other dims (a view: the element count must match). */
export function reshaped(tensor: TensorData, dims: readonly number[]): TensorData {
  if (elementCount(dims) !== elementCount(tensor.dims))
    throw new Error(`cannot view [${tensor.dims.join(', ')}] as [${dims.join(', ')}]`)
  return { dims, write: (put) => tensor.write(put) }
}

/** Tensors of equal shape stacked along a new first axis. */
export function stacked(parts: readonly TensorData[]): TensorData {
  const first = parts[0]
  if (first === undefined) throw new Error('nothing to stack')
  const size = elementCount(first.dims)
  for (const part of parts)
    if (elementCount(part.dims) !== size)
      throw new Error(`cannot stack [${part.dims.join(', ')}] on [${first.dims.join(', ')}]`)
  return {
    dims: [parts.length, ...first.dims],
    async write(put) {
      for (const [i, part] of parts.entries()) await part.write((at, values) => put(i * size + at, values))
    },
  }
}
