/**
 * Where a graph's weights come from.
 *
 * `Weights` is what the shared layers (layers.ts) ask for: a Linear's weight,
 * a bias, a norm's scale. `CheckpointWeights` adds what the understanding
 * graphs read from a checkpoint in the published layout (src/convert
 * implements it over the shards). `SeededWeights` makes the deterministic
 * random values of the tiny random checkpoints (tiny-checkpoint.ts).
 */
import type { TensorData } from './tensor-data.js'

export interface Weights {
  /** A Linear layer's weight in MatMul's `[in, out]` layout (checkpoints store `[out, in]`). */
  linear(key: string, inDim: number, outDim: number): TensorData
  /** A Linear layer's weight as stored, `[out, in]` (MatMulNBits' row order, one row per output). */
  storedLinear(key: string, inDim: number, outDim: number): TensorData
  /** A bias or a LayerNorm's shift, `[dim]`. */
  bias(key: string, dim: number): TensorData
  /** A norm's scale, `[dim]`. */
  scale(key: string, dim: number): TensorData
}

/** Tensors of a checkpoint, by key; every call checks the stored shape and throws naming the key when it differs. */
export interface CheckpointWeights extends Weights {
  /** The tensor as stored. */
  tensor(key: string, shape: readonly number[]): TensorData
  /** Rows `[lo, hi)` of a tensor stored with `shape` (`[rows, …]`). */
  rows(key: string, shape: readonly number[], lo: number, hi: number): TensorData
  /**
   * A tensor stored with `shape`, viewed as `[shape[0], rest]` and transposed to
   * `[rest, hi − lo]` after keeping rows `[lo, hi)`: a Linear's output features
   * `[lo, hi)` as MatMul's weight, or a table made channel-major.
   */
  transposed(key: string, shape: readonly number[], rows?: readonly [number, number]): TensorData
}

/**
 * Deterministic random weights. Each tensor draws from its own stream, seeded
 * by the model seed and the tensor's name, so adding a tensor never changes
 * the others. Only integer arithmetic and one multiply per value: the bytes are
 * the same on every platform and Node.js version.
 */
export class SeededWeights {
  constructor(private readonly seed: number) {}

  /** Uniform values with the given standard deviation, centred on zero. */
  random(name: string, size: number, std: number): Float32Array {
    const halfWidth = std * Math.sqrt(3)
    const out = new Float32Array(size)
    // SplitMix32, inlined (the tiny model draws millions of values at every first start).
    let state = (fnv1a(name) ^ this.seed) >>> 0
    for (let i = 0; i < size; i++) {
      state = (state + 0x9e3779b9) >>> 0
      let z = state
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
      out[i] = ((((z ^ (z >>> 16)) >>> 0) / 0x1_0000_0000) * 2 - 1) * halfWidth
    }
    return out
  }

  /** Values around `center` (norm gains: near one, but not exactly, so a test would see them). */
  around(name: string, size: number, center: number, spread: number): Float32Array {
    const out = this.random(name, size, spread)
    for (let i = 0; i < size; i++) out[i] = (out[i] as number) + center
    return out
  }
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  return h >>> 0
}
