/**
 * Cache arrays are laid out per head: [heads, stride, dim], where `stride` is
 * the positions reserved per head (a sequence's capacity, a batch row's slots,
 * a graph output's time axis). Every copy between them goes through here.
 */
export type Elements = Float32Array | Uint16Array

/** A place in a [heads, stride, dim] array: where the block starts, its stride, and the first position. */
export interface HeadSpan {
  data: Elements
  offset: number
  stride: number
  position: number
}

/** A span over an array holding exactly one [heads, stride, dim] block, from `position`. */
export function arraySpan(data: Elements, stride: number, position = 0): HeadSpan {
  return { data, offset: 0, stride, position }
}

/** Copies `count` positions of every head from one layout to another. */
export function copyHeads(from: HeadSpan, to: HeadSpan, count: number, heads: number, dim: number): void {
  if (count === 0) return
  for (let h = 0; h < heads; h++) {
    const source = from.offset + (h * from.stride + from.position) * dim
    to.data.set(from.data.subarray(source, source + count * dim), to.offset + (h * to.stride + to.position) * dim)
  }
}
