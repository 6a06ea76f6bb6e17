/**
 * float32 → IEEE 754 half precision, as bits (Node.js 20 has no Float16Array):
 * round to nearest, ties to even, as ONNX Runtime's Cast rounds. Values past
 * the half range (65,504) become ±infinity; the fp16 embedding table's values
 * are far inside it.
 */
import type { TensorData } from './tensor-data.js'

const single = new Float32Array(1)
const singleBits = new Uint32Array(single.buffer)

export function float16Bits(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length)
  for (let i = 0; i < values.length; i++) out[i] = float16Bit(values[i] as number)
  return out
}

/** `source`'s values as float16 bits, converted piece by piece as they are written. */
export function asFloat16(source: TensorData): TensorData<Uint16Array> {
  return { dims: source.dims, write: (put) => source.write((at, values) => put(at, float16Bits(values))) }
}

/** One value's float16 bits. */
export function float16Bit(value: number): number {
  single[0] = value
  const bits = singleBits[0] as number
  const sign = (bits >>> 16) & 0x8000
  const exponent = ((bits >>> 23) & 0xff) - 127 + 15
  const mantissa = bits & 0x7fffff
  if (exponent === 0xff - 127 + 15) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200) // infinity, NaN
  if (exponent >= 0x1f) return sign | 0x7c00
  if (exponent <= 0) {
    // Subnormal half: the implicit one joins the mantissa, shifted out further; below 2^-25 it rounds to zero.
    if (exponent < -10) return sign
    return sign | roundedShift(mantissa | 0x800000, 14 - exponent)
  }
  // A carry out of the mantissa moves into the exponent, which is what rounding up should do.
  return sign | roundedShift((exponent << 23) | mantissa, 13)
}

/** value >> shift, rounded to nearest, ties to even. */
function roundedShift(value: number, shift: number): number {
  const kept = value >>> shift
  const rest = value & ((1 << shift) - 1)
  const half = 1 << (shift - 1)
  return rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept
}
