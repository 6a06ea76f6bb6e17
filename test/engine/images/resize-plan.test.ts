import t from 'tap'
import { TINY_CONFIG } from '../../../src/builder/tiny.js'
import { planResize, type VisionConfig } from '../../../src/engine/images/resize-plan.js'

const vision = TINY_CONFIG.vision

t.test('a 224×224 image keeps its size: 8×8 = 64 positions', async (t) => {
  t.same(planResize(224, 224, vision, 'high'), { width: 224, height: 224, rows: 8, cols: 8, positions: 64 })
})

t.test('a 448×448 image fills the cap exactly: 16×16 = 256 positions', async (t) => {
  t.same(planResize(448, 448, vision, 'auto'), { width: 448, height: 448, rows: 16, cols: 16, positions: 256 })
})

t.test('a 1000×1000 image is scaled down to the cap, 16×16 positions', async (t) => {
  t.same(planResize(1000, 1000, vision, 'high'), { width: 448, height: 448, rows: 16, cols: 16, positions: 256 })
})

t.test('a 1000×700 image is scaled down by the square root of the excess, keeping its aspect ratio', async (t) => {
  // round: 25 × 36 = 900 > 256; β = √(25 × 35.71 / 256) = 1.867; floor(13.39) × floor(19.13)
  t.same(planResize(1000, 700, vision, 'high'), { width: 532, height: 364, rows: 13, cols: 19, positions: 247 })
})

t.test('a tiny 10×10 image is raised to the minimum, 2×2 positions', async (t) => {
  t.same(planResize(10, 10, vision, 'high'), { width: 56, height: 56, rows: 2, cols: 2, positions: 4 })
})

t.test('a side of exactly half a unit rounds half to even, as Python does', async (t) => {
  // 70 / 28 = 2.5 → 2, and 98 / 28 = 3.5 → 4
  t.same(planResize(70, 98, vision, 'high'), { width: 56, height: 112, rows: 4, cols: 2, positions: 8 })
})

t.test('a 28×2800 image (extreme aspect ratio) stays within bounds with each side at least 28 px', async (t) => {
  t.same(planResize(28, 2800, vision, 'high'), { width: 28, height: 2800, rows: 100, cols: 1, positions: 100 })
  t.same(planResize(28, 2800, vision, 'low'), { width: 28, height: 1792, rows: 64, cols: 1, positions: 64 })
  t.same(planResize(2800, 28, vision, 'low'), { width: 1792, height: 28, rows: 1, cols: 64, positions: 64 })
  t.same(planResize(28, 28000, vision, 'high'), { width: 28, height: 7168, rows: 256, cols: 1, positions: 256 })
  t.same(planResize(1, 100000, vision, 'high'), { width: 28, height: 7168, rows: 256, cols: 1, positions: 256 })
})

t.test('detail low caps the positions at low_detail_max_positions', async (t) => {
  t.same(planResize(448, 448, vision, 'low'), { width: 224, height: 224, rows: 8, cols: 8, positions: 64 })
  t.same(planResize(1000, 600, vision, 'low'), { width: 280, height: 168, rows: 6, cols: 10, positions: 60 })
  t.same(planResize(224, 224, vision, 'low'), { width: 224, height: 224, rows: 8, cols: 8, positions: 64 })
})

t.test('detail auto plans the same as detail high', async (t) => {
  for (const [w, h] of [
    [10, 10],
    [640, 480],
    [3000, 200],
  ] as const)
    t.same(planResize(w, h, vision, 'auto'), planResize(w, h, vision, 'high'))
})

t.test('every plan over a sweep of sizes lies within bounds, in whole units', async (t) => {
  const sides = [1, 7, 27, 28, 29, 41, 100, 333, 1000, 4000, 20000, 65535]
  const problems: string[] = []
  for (const detail of ['low', 'high'] as const) {
    const cap = detail === 'low' ? vision.low_detail_max_positions : vision.max_positions
    for (const w of sides) {
      for (const h of sides) {
        const p = planResize(w, h, vision, detail)
        const ok =
          p.positions === p.rows * p.cols &&
          p.positions >= vision.min_positions &&
          p.positions <= cap &&
          p.width === p.cols * 28 &&
          p.height === p.rows * 28 &&
          p.rows >= 1 &&
          p.cols >= 1
        if (!ok) problems.push(`${w}×${h} ${detail}: ${JSON.stringify(p)}`)
      }
    }
  }
  t.same(problems, [])
})

t.test('sizes come from the config: a Kelix-sized vision section plans in 32-px units', async (t) => {
  const kelix: VisionConfig = {
    ...vision,
    patch_size: 16,
    merge_size: 2,
    min_positions: 32,
    max_positions: 1280,
    low_detail_max_positions: 256,
  }
  t.same(planResize(1024, 768, kelix, 'high'), { width: 1024, height: 768, rows: 24, cols: 32, positions: 768 })
  t.same(planResize(100, 100, kelix, 'high'), { width: 192, height: 192, rows: 6, cols: 6, positions: 36 })
})

t.test('bounds narrower than the rounding step still give a plan within them', async (t) => {
  const narrow: VisionConfig = { ...vision, min_positions: 5, max_positions: 5, low_detail_max_positions: 5 }
  t.same(planResize(100, 100, narrow, 'high'), { width: 140, height: 28, rows: 1, cols: 5, positions: 5 })
})

t.test('a size that is not a positive integer is a RangeError', async (t) => {
  t.throws(() => planResize(0, 10, vision, 'high'), RangeError)
  t.throws(() => planResize(10.5, 10, vision, 'high'), RangeError)
})
