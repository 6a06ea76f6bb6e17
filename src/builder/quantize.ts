/**
 * Weight-only block quantization for ONNX Runtime's `MatMulNBits`
 * (`com.microsoft`): y = x · dequant(B)ᵀ for a weight stored [N, K] (one row
 * per output feature: a Linear's stored layout, or an LM head's rows), in
 * blocks of `QUANT_BLOCK` values along K:
 *
 *   B       uint8   [N, ⌈K/32⌉, 32·bits/8]  each block's codes, low bits first
 *                                           (int4: two per byte, the earlier in the low nibble)
 *   scales  float32 [N, ⌈K/32⌉]
 *   value = (code − 2^(bits−1)) · scale     (no zero_points input: 2^(bits−1) is ONNX
 *                                           Runtime's default, so the codes are symmetric)
 *
 * Each block's value of largest magnitude m maps exactly onto the lowest code
 * (scale = m / −2^(bits−1), negative when m is): the other 2^bits − 1 codes
 * then cover ±|m| in steps of |m|/8 for int4 instead of |m|/7 (llama.cpp's Q4_0
 * rule); the opposite extreme, if present, clamps to the highest code.
 * A K that is not a multiple of the block pads the last block with the zero code.
 *
 * `blockQuantized` streams: each piece of whole rows the source yields becomes
 * its codes at once; the scales (1/32 of the float32 weight) are kept from that
 * pass until they are written, right after the codes.
 */
import type { TensorData } from './tensor-data.js'

/** Values per quantization block along K (a power of two ≥ 16; 32 is what MLAS's fastest kernels take). */
export const QUANT_BLOCK = 32

export type QuantBits = 4 | 8

/** Codes and scales of rows quantized at once. */
export interface QuantizedRows {
  /** [rows, blocks, blob] */
  codes: Uint8Array
  /** [rows, blocks] */
  scales: Float32Array
}

/** MatMulNBits' layout for a [N, K] weight. */
export function quantLayout(k: number, bits: QuantBits) {
  const blocks = Math.ceil(k / QUANT_BLOCK)
  const blob = (QUANT_BLOCK * bits) / 8
  return { blocks, blob, rowBytes: blocks * blob }
}

/** Quantizes row-major rows of width `k`. */
export function quantizeRows(values: Float32Array, k: number, bits: QuantBits): QuantizedRows {
  if (values.length % k !== 0) throw new Error(`${values.length} values are not whole rows of ${k}`)
  const rows = values.length / k
  const { blocks, blob, rowBytes } = quantLayout(k, bits)
  const zero = 1 << (bits - 1)
  const top = (1 << bits) - 1
  const codes = new Uint8Array(rows * rowBytes)
  const scales = new Float32Array(rows * blocks)
  const block = new Uint8Array(QUANT_BLOCK)
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < blocks; b++) {
      const start = r * k + b * QUANT_BLOCK
      const end = r * k + Math.min(k, (b + 1) * QUANT_BLOCK)
      let extreme = 0
      for (let i = start; i < end; i++)
        if (Math.abs(values[i] as number) > Math.abs(extreme)) extreme = values[i] as number
      const scale = Math.fround(extreme / -zero)
      block.fill(zero)
      if (scale !== 0)
        for (let i = start; i < end; i++)
          block[i - start] = Math.min(top, Math.max(0, Math.round((values[i] as number) / scale) + zero))
      scales[r * blocks + b] = scale
      const out = r * rowBytes + b * blob
      if (bits === 8) codes.set(block, out)
      else
        for (let j = 0; j < blob; j++) codes[out + j] = (block[2 * j] as number) | ((block[2 * j + 1] as number) << 4)
    }
  }
  return { codes, scales }
}

/** The [N, K] float weight the codes stand for (what MatMulNBits multiplies by; tests compare against it). */
export function dequantize(q: QuantizedRows, n: number, k: number, bits: QuantBits): Float32Array {
  const { blocks, blob, rowBytes } = quantLayout(k, bits)
  const zero = 1 << (bits - 1)
  const out = new Float32Array(n * k)
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < k; i++) {
      const b = Math.floor(i / QUANT_BLOCK)
      const at = i % QUANT_BLOCK
      const byte = q.codes[r * rowBytes + b * blob + (bits === 8 ? at : at >> 1)] as number
      const code = bits === 8 ? byte : at % 2 === 0 ? byte & 0x0f : byte >> 4
      out[r * k + i] = (code - zero) * (q.scales[r * blocks + b] as number)
    }
  }
  return out
}

/** A [N, K] weight as MatMulNBits' inputs, produced while the graph is written. */
export interface BlockQuantized {
  n: number
  k: number
  bits: QuantBits
  codes: TensorData<Uint8Array>
  scales: TensorData
}

/**
 * Quantizes `rows` ([N, K], produced in pieces of whole rows) as it is written.
 * Write `codes` before `scales` to read the source once (otherwise `scales`
 * reads it again).
 */
export function blockQuantized(rows: TensorData, bits: QuantBits): BlockQuantized {
  const [n, k] = rows.dims
  if (rows.dims.length !== 2 || n === undefined || k === undefined)
    throw new Error(`a quantized weight is [N, K], got [${rows.dims.join(', ')}]`)
  const { blocks, rowBytes } = quantLayout(k, bits)
  let kept: Float32Array | undefined
  const eachPiece = (use: (firstRow: number, q: QuantizedRows) => Promise<void>) =>
    rows.write(async (at, values) => {
      if (at % k !== 0 || values.length % k !== 0)
        throw new Error(`quantizing [${n}, ${k}]: a piece of ${values.length} values at ${at} is not whole rows`)
      await use(at / k, quantizeRows(values, k, bits))
    })
  return {
    n,
    k,
    bits,
    codes: {
      dims: [n, blocks, rowBytes / blocks],
      async write(put) {
        const scales = new Float32Array(n * blocks)
        await eachPiece(async (first, q) => {
          scales.set(q.scales, first * blocks)
          await put(first * rowBytes, q.codes)
        })
        kept = scales
      },
    },
    scales: {
      dims: [n, blocks],
      async write(put) {
        const scales = kept
        kept = undefined
        if (scales !== undefined) return put(0, scales)
        await eachPiece((first, q) => put(first * blocks, q.scales))
      },
    },
  }
}
