/** Small helpers to make ONNX Runtime tensors in tests. */
import ort from 'onnxruntime-node'

export const i64 = (values: readonly number[], dims: readonly number[]) =>
  new ort.Tensor('int64', BigInt64Array.from(values, BigInt), dims)
export const f32 = (values: Float32Array, dims: readonly number[]) => new ort.Tensor('float32', values, dims)

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`)
  let worst = 0
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)))
  return worst
}

/** Nested lists of numbers (reference.json arrays), row-major in the shape the reference README gives. */
export type Nested = number | Nested[]

/** The values of a nested list as float32 (the reference README: parse as float64, then cast). */
export function float32s(values: Nested): Float32Array {
  const out: number[] = []
  const walk = (v: Nested): void => {
    if (Array.isArray(v)) v.forEach(walk)
    else out.push(v)
  }
  walk(values)
  return Float32Array.from(out)
}
