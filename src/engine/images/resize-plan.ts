/**
 * The size an image is resized to before the visual tokenizer sees it.
 * Pure arithmetic over config.json's `vision` section; no pixels involved.
 */
import type { KelixConfig } from '../model-config.js'
import type { ImageDetail } from '../types.js'

export type VisionConfig = KelixConfig['vision']

export interface ResizePlan {
  /** Target width in pixels: `cols × unit`, where unit = patch_size × merge_size. */
  width: number
  /** Target height in pixels: `rows × unit`. */
  height: number
  /** LLM positions down the image. */
  rows: number
  /** LLM positions across the image. */
  cols: number
  /** `rows × cols`, within [min_positions, cap]. */
  positions: number
}

/** Absorbs float error in `x / beta` so that exact multiples do not round the wrong way. */
const EPS = 1e-9

/** The most positions an image may take: `low_detail_max_positions` for 'low', else `max_positions`. */
export function positionCap(vision: VisionConfig, detail: ImageDetail): number {
  return detail === 'low' ? vision.low_detail_max_positions : vision.max_positions
}

/**
 * Plans the resize of a `width × height` image, Qwen2-VL's `smart_resize` in
 * units of one LLM position (unit = patch_size × merge_size px, 28 in Kelix):
 *
 * 1. Round each side to the nearest multiple of the unit (half to even, as
 *    Python's `round`), at least one unit.
 * 2. If the area exceeds the cap (`max_positions`, or `low_detail_max_positions`
 *    for detail 'low'), scale both sides by `1/β`, β = √(area / cap), and
 *    round down; if it is below `min_positions`, scale by β = √(min / area) and
 *    round up. The aspect ratio is kept up to rounding.
 * 3. Only if that still misses the bounds (an extreme aspect ratio pinned one
 *    side at one unit, or the bounds are narrower than the rounding step): take
 *    the rows × cols within the bounds whose aspect ratio is closest to the
 *    image's. One row of `min_positions` always qualifies, so a plan exists.
 *
 * @example planResize(224, 224, vision, 'high') // 8 × 8 = 64 positions, 224 × 224 px
 */
export function planResize(width: number, height: number, vision: VisionConfig, detail: ImageDetail): ResizePlan {
  if (!(Number.isInteger(width) && width > 0 && Number.isInteger(height) && height > 0)) {
    throw new RangeError(`image size must be positive integers, got ${width}×${height}`)
  }
  const unit = vision.patch_size * vision.merge_size
  const min = vision.min_positions
  const cap = positionCap(vision, detail)
  const h = height / unit
  const w = width / unit

  let rows = Math.max(1, roundHalfEven(h))
  let cols = Math.max(1, roundHalfEven(w))
  if (rows * cols > cap) {
    const beta = Math.sqrt((h * w) / cap)
    rows = Math.max(1, Math.floor(h / beta + EPS))
    cols = Math.max(1, Math.floor(w / beta + EPS))
  } else if (rows * cols < min) {
    const beta = Math.sqrt(min / (h * w))
    rows = Math.max(1, Math.ceil(h * beta - EPS))
    cols = Math.max(1, Math.ceil(w * beta - EPS))
  }
  if (rows * cols < min || rows * cols > cap) [rows, cols] = closestInBounds(h / w, min, cap)
  return { width: cols * unit, height: rows * unit, rows, cols, positions: rows * cols }
}

/** The grid with `min ≤ rows × cols ≤ cap` whose rows / cols is closest to `ratio`; ties go to fewer rows. */
function closestInBounds(ratio: number, min: number, cap: number): [number, number] {
  let best: [number, number] = [1, min]
  let bestError = Infinity
  for (let rows = 1; rows <= cap; rows++) {
    const lo = Math.ceil(min / rows)
    const hi = Math.floor(cap / rows)
    if (lo > hi) continue
    const cols = Math.min(hi, Math.max(lo, Math.round(rows / ratio)))
    const error = Math.abs(Math.log(rows / cols / ratio))
    if (error < bestError) {
      best = [rows, cols]
      bestError = error
    }
  }
  return best
}

function roundHalfEven(x: number): number {
  const floor = Math.floor(x)
  const diff = x - floor
  if (diff !== 0.5) return Math.round(x)
  return floor % 2 === 0 ? floor : floor + 1
}
