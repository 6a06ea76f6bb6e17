import t from 'tap'
import { TINY_CONFIG } from '../../../src/builder/tiny.js'
import { toPatches } from '../../../src/engine/images/patches.js'
import type { VisionConfig } from '../../../src/engine/images/resize-plan.js'
import { coordinateRgb, normalised } from './fixtures/images.js'

// 84 × 56 px = a 4 × 6 grid of 14-px patches, 588 values each.
const W = 84
const H = 56
const PATCH = 3 * 14 * 14

/** Index in the output of channel c of pixel (x, y) within patch (row, col) of a 6-column grid. */
const at = (row: number, col: number, c: number, y: number, x: number) => (row * 6 + col) * PATCH + c * 196 + y * 14 + x

t.test('patches are row-major over the patch grid and channel-major inside', async (t) => {
  const vision = TINY_CONFIG.vision
  const out = toPatches(coordinateRgb(W, H), W, H, vision)
  t.equal(out.length, 24 * PATCH)
  // Channel values at pixel (x, y): R = 3x, G = 4y, B = 255 − x − y.
  t.equal(out[at(0, 0, 0, 0, 0)], normalised(0, 0, vision))
  t.equal(out[at(0, 0, 0, 0, 1)], normalised(3, 0, vision))
  t.equal(out[at(0, 0, 1, 1, 0)], normalised(4, 1, vision))
  t.equal(out[at(1, 1, 1, 3, 5)], normalised(4 * 17, 1, vision))
  t.equal(out[at(1, 1, 0, 3, 5)], normalised(3 * 19, 0, vision))
  t.equal(out[at(0, 5, 2, 13, 13)], normalised(255 - 83 - 13, 2, vision))
  t.equal(out[at(3, 5, 2, 13, 13)], normalised(255 - 83 - 55, 2, vision))
  t.equal(out[at(2, 4, 0, 7, 2)], normalised(3 * 58, 0, vision))
})

t.test('each channel is normalised with its own mean and standard deviation', async (t) => {
  const vision: VisionConfig = { ...TINY_CONFIG.vision, image_mean: [0.1, 0.2, 0.3], image_std: [0.4, 0.5, 0.6] }
  const out = toPatches(coordinateRgb(W, H), W, H, vision)
  t.equal(out[at(1, 2, 0, 4, 6)], normalised(3 * 34, 0, vision))
  t.equal(out[at(1, 2, 1, 4, 6)], normalised(4 * 18, 1, vision))
  t.equal(out[at(1, 2, 2, 4, 6)], normalised(255 - 34 - 18, 2, vision))
})

t.test('white is exactly 1 and black exactly −1 with mean and std 0.5', async (t) => {
  const out = toPatches(new Uint8Array(14 * 14 * 3).fill(255), 14, 14, TINY_CONFIG.vision)
  t.same([...new Set(out)], [1])
  t.same([...new Set(toPatches(new Uint8Array(14 * 14 * 3), 14, 14, TINY_CONFIG.vision))], [-1])
})

t.test('a size that is not whole patches, or a buffer of the wrong length, is a RangeError', async (t) => {
  t.throws(() => toPatches(new Uint8Array(15 * 14 * 3), 15, 14, TINY_CONFIG.vision), RangeError)
  t.throws(() => toPatches(new Uint8Array(10), 14, 14, TINY_CONFIG.vision), RangeError)
})
