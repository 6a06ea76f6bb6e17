/**
 * Choosing one index from processed logits: greedy, or temperature → top_k → top_p → min_p → draw.
 */
import type { SamplingParams } from '../types.js'
import type { Rng } from './rng.js'
import type { SamplerScratch } from './scratch.js'
import { argmax, nucleusSize, selectTop } from './select.js'

type DrawParams = Pick<SamplingParams, 'temperature' | 'topK' | 'topP' | 'minP'>

/** Writes the indices of the finite entries of `logits[0..n)` to `order`; returns how many. */
function collectFinite(logits: Float32Array, n: number, order: Int32Array): number {
  let m = 0
  for (let i = 0; i < n; i++) if (logits[i]! > -Infinity) order[m++] = i
  return m
}

/** The largest logit among the candidates `order[0..m)`, `m >= 1`. */
function maxLogit(logits: Float32Array, order: Int32Array, m: number): number {
  let max = logits[order[0]!]!
  for (let j = 1; j < m; j++) {
    const x = logits[order[j]!]!
    if (x > max) max = x
  }
  return max
}

/** Sets `weights[c] = exp((logit − max) / temperature)` for the candidates; returns their sum. */
function weigh(logits: Float32Array, order: Int32Array, m: number, temperature: number, weights: Float64Array): number {
  const max = maxLogit(logits, order, m)
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

function totalWeight(order: Int32Array, weights: Float64Array, m: number): number {
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
function drawWeighted(order: Int32Array, weights: Float64Array, m: number, total: number, rng: Rng): number {
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

/**
 * Picks an index into `logits[0..n)` (processed logits, −∞ for excluded ids); -1 when none is
 * finite. Temperature 0 and top_k 1 take the argmax, lowest index on ties, and use no randomness.
 * Otherwise the weights are `exp((logit − max) / temperature)`, so the best candidate has weight 1,
 * and exactly one `rng.nextFloat()` is drawn.
 */
export function pickIndex(logits: Float32Array, n: number, p: DrawParams, scratch: SamplerScratch, rng: Rng): number {
  if (p.temperature === 0 || p.topK === 1) return argmax(logits, n)
  const { order, weights } = scratch
  let m = p.topK > 0 && p.topK < n ? selectTop(logits, n, p.topK, order) : collectFinite(logits, n, order)
  if (m === 0) return -1
  let total = weigh(logits, order, m, p.temperature, weights)
  if (p.topP < 1) {
    m = nucleusSize(order, logits, weights, m, p.topP * total)
    total = totalWeight(order, weights, m)
  }
  if (p.minP > 0) {
    m = keepAboveMinP(order, weights, m, p.minP)
    total = totalWeight(order, weights, m)
  }
  return drawWeighted(order, weights, m, total, rng)
}
