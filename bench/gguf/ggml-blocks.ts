/**
 * The three GGML tensor types the benchmark writes, laid out as ggml's
 * reference quantizers (`quantize_row_q8_0_ref`, `quantize_row_q4_0_ref`)
 * write them, in float32 arithmetic:
 *
 *   F32   4 bytes per value
 *   Q8_0  blocks of 32: float16 d = max|x| / 127, then 32 int8 round(x / d)
 *   Q4_0  blocks of 32: float16 d = x_m / −8 (x_m the value of largest |x|),
 *         then 16 bytes: value j in the low nibble of byte j, value 16 + j in
 *         its high nibble, each min(15, trunc(x / d + 8.5)); x = d · (q − 8)
 *
 * Rows are quantized along their length (ggml's ne[0], the input features of
 * a [out, in] weight), so a row's length must be a multiple of 32.
 */
import { float16Bit } from '../../src/builder/float16.js'

export type GgmlType = 'F32' | 'Q8_0' | 'Q4_0'

/** ggml's `enum ggml_type` values. */
export const GGML_TYPE_ID: Readonly<Record<GgmlType, number>> = { F32: 0, Q4_0: 2, Q8_0: 8 }

/** Values per block and bytes per block. */
const BLOCK: Readonly<Record<GgmlType, { values: number; bytes: number }>> = {
  F32: { values: 1, bytes: 4 },
  Q8_0: { values: 32, bytes: 2 + 32 },
  Q4_0: { values: 32, bytes: 2 + 16 },
}

/** Bytes of `count` values of `type`; a count that is not whole blocks is a RangeError. */
export function ggmlBytes(type: GgmlType, count: number): number {
  const { values, bytes } = BLOCK[type]
  if (count % values !== 0)
    throw new RangeError(`${type} stores blocks of ${values} values; ${count} is not a multiple`)
  return (count / values) * bytes
}

/** `values` (whole blocks) encoded as `type`. */
export function encodeGgml(type: GgmlType, values: Float32Array): Uint8Array {
  const out = new Uint8Array(ggmlBytes(type, values.length))
  if (type === 'F32') out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength))
  else if (type === 'Q8_0') encodeQ8_0(values, out)
  else encodeQ4_0(values, out)
  return out
}

const f32 = Math.fround

function encodeQ8_0(x: Float32Array, out: Uint8Array): void {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
  for (let b = 0, at = 0; b < x.length; b += 32, at += 34) {
    let amax = 0
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j] as number))
    const d = f32(amax / 127)
    const id = d === 0 ? 0 : f32(1 / d)
    view.setUint16(at, float16Bit(d), true)
    // roundf: halves away from zero.
    for (let j = 0; j < 32; j++) view.setInt8(at + 2 + j, roundAway(f32((x[b + j] as number) * id)))
  }
}

function encodeQ4_0(x: Float32Array, out: Uint8Array): void {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
  for (let b = 0, at = 0; b < x.length; b += 32, at += 18) {
    let amax = 0
    let max = 0
    for (let j = 0; j < 32; j++) {
      const v = x[b + j] as number
      if (amax < Math.abs(v)) {
        amax = Math.abs(v)
        max = v
      }
    }
    const d = f32(max / -8)
    const id = d === 0 ? 0 : f32(1 / d)
    view.setUint16(at, float16Bit(d), true)
    const nibble = (v: number) => Math.min(15, Math.trunc(f32(f32(v * id) + 8.5)))
    for (let j = 0; j < 16; j++) out[at + 2 + j] = nibble(x[b + j] as number) | (nibble(x[b + 16 + j] as number) << 4)
  }
}

const roundAway = (v: number) => Math.sign(v) * Math.round(Math.abs(v))
