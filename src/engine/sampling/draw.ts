/**
 * Choosing one index from weighed candidates: the plain path (all finite ids, or the top_k, in a
 * fixed order → weights → top_p → min_p → draw) and the pieces the faster paths share with it.
 * The faster paths (pick.ts, nucleus.ts) must reproduce this path's ids exactly, so the order of
 * candidates and of every float sum here is part of the sampler's results.
 */
import type { SamplingParams } from '../types.js'
import type { Rng } from './rng.js'
import { nucleusSize } from './select.js'

type DrawParams = Pick<SamplingParams, 'temperature' | 'topP' | 'minP'>

/**
 * The finite entries of `logits[0..n)`, in id order, into `order`, each weighed as `weigh` weighs
 * it: one pass instead of collecting and then weighing (the same values, summed in the same order).
 */
function weighFinite(
  logits: Float32Array,
  n: number,
  max: number,
  temperature: number,
  order: Int32Array,
  weights: Float64Array,
): { m: number; total: number } {
  const invT = 1 / temperature
  let m = 0
  let total = 0
  for (let i = 0; i < n; i++) {
    const x = logits[i]!
    if (!(x > -Infinity)) continue
    order[m++] = i
    const w = Math.exp((x - max) * invT)
    weights[i] = w
    total += w
  }
  return { m, total }
}

/**
 * Sets `weights[c] = exp((logit − max) / temperature)` for the candidates `order[0..m)`, where
 * `max` is their largest logit, so the best weighs exactly 1; returns the sum, in candidate order.
 */
export function weigh(
  logits: Float32Array,
  order: Int32Array,
  m: number,
  max: number,
  temperature: number,
  weights: Float64Array,
): number {
  const invT = 1 / temperature
  let total = 0
  for (let j = 0; j < m; j++) {
    const c = order[j]!
    const w = Math.exp((logits[c]! - max) * invT)
    weights[c] = w
    total += w
  }
  return total
}

export function totalWeight(order: Int32Array, weights: Float64Array, m: number): number {
  let total = 0
  for (let j = 0; j < m; j++) total += weights[order[j]!]!
  return total
}

/** Keeps, in order, the candidates with weight `>= minP` (the best one has weight 1). */
function keepAboveMinP(order: Int32Array, weights: Float64Array, m: number, minP: number): number {
  let kept = 0
  for (let j = 0; j < m; j++) {
    const c = order[j]!
    if (weights[c]! >= minP) order[kept++] = c
  }
  return kept
}

/** Inverse-CDF draw over `order[0..m)` weighing `total`; never returns a zero-weight candidate. */
export function drawWeighted(order: Int32Array, weights: Float64Array, m: number, total: number, rng: Rng): number {
  let u = rng.nextFloat() * total
  let last = order[0]!
  for (let j = 0; j < m; j++) {
    const c = order[j]!
    const w = weights[c]!
    if (w <= 0) continue
    last = c
    u -= w
    if (u < 0) return c
  }
  // Only reached through rounding at the very top of the range.
  return last
}

/** min_p over the weighed candidates `order[0..m)` of weight `total`, then the draw. */
export function drawAboveMinP(
  order: Int32Array,
  weights: Float64Array,
  m: number,
  total: number,
  minP: number,
  rng: Rng,
): number {
  if (minP > 0) {
    m = keepAboveMinP(order, weights, m, minP)
    total = totalWeight(order, weights, m)
  }
  return drawWeighted(order, weights, m, total, rng)
}

/** top_p over the weighed candidates `order[0..m)` of weight `total`, then min_p and the draw. */
export function drawFromCandidates(
  logits: Float32Array,
  order: Int32Array,
  weights: Float64Array,
  m: number,
  total: number,
  p: DrawParams,
  rng: Rng,
): number {
  if (p.topP < 1) {
    m = nucleusSize(order, logits, weights, m, p.topP * total)
    total = totalWeight(order, weights, m)
  }
  return drawAboveMinP(order, weights, m, total, p.minP, rng)
}

/** The plain path over every finite id of `logits[0..n)`, whose largest value is `max`; -1 when none is finite. */
export function pickPlain(
  logits: Float32Array,
  n: number,
  max: number,
  p: DrawParams,
  order: Int32Array,
  weights: Float64Array,
  rng: Rng,
): number {
  const { m, total } = weighFinite(logits, n, max, p.temperature, order, weights)
  if (m === 0) return -1
  return drawFromCandidates(logits, order, weights, m, total, p, rng)
}
