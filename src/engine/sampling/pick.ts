/**
 * Picks one index from processed logits: greedy, or temperature → top_k → top_p → min_p → draw.
 * Each parameter set takes the cheapest path that gives the plain path's index (draw.ts), to the id.
 */
import type { SamplingParams } from '../types.js'
import { drawFromCandidates, drawWeighted, pickPlain, weigh } from './draw.js'
import { pickNucleus } from './nucleus.js'
import type { Rng } from './rng.js'
import { NEEDS_MAPPING, type RowScan } from './row-scan.js'
import type { SamplerScratch } from './scratch.js'
import { selectTop } from './select.js'

type PickParams = Pick<SamplingParams, 'temperature' | 'topK' | 'topP' | 'minP'>

/**
 * min_p alone keeps the ids with weight `>= minP` in id order, and only they enter the sum and the
 * draw: one pass finds them, with an exponential only for those within reach of the threshold.
 */
function pickAboveMinP(
  key: Float32Array,
  n: number,
  p: PickParams,
  scan: RowScan,
  scratch: SamplerScratch,
  rng: Rng,
): number {
  const { order, weights } = scratch
  const invT = 1 / p.temperature
  // Math.exp is within an ulp of e^z, so no z this far below ln(min_p) reaches min_p.
  const zFloor = Math.log(p.minP) - 1e-6
  let m = 0
  let total = 0
  for (let i = 0; i < n; i++) {
    const z = (key[i]! - scan.max) * invT
    if (!(z >= zFloor)) continue
    const w = Math.exp(z)
    if (w < p.minP) continue
    order[m++] = i
    weights[i] = w
    total += w
  }
  return drawWeighted(order, weights, m, total, rng)
}

/**
 * Picks an index into `key[0..n)` (processed logits, −∞ for excluded ids), leaving the row's scan
 * in `scratch.scan`; -1 when none is finite, `NEEDS_MAPPING` (before any randomness is used) when
 * the row holds NaN or +∞. Temperature 0 and top_k 1 take the argmax, lowest index on ties, and
 * use no randomness. Otherwise the weights are `exp((logit − max) / temperature)`, so the best
 * candidate has weight 1, and exactly one `rng.nextFloat()` is drawn.
 */
export function pickIndex(key: Float32Array, n: number, p: PickParams, scratch: SamplerScratch, rng: Rng): number {
  const greedy = p.temperature === 0 || p.topK === 1
  const topK = p.topK > 0 && p.topK < n
  const { order, weights } = scratch
  if (!greedy && topK) {
    // The selection is this path's one read of the row: its best candidate is the row's maximum,
    // a +∞ would be a candidate, and it passes NaN over as the mapped copy's −∞.
    const m = selectTop(key, n, p.topK, order)
    let max = -Infinity
    for (let j = 0; j < m; j++) max = Math.max(max, key[order[j]!]!)
    if (max === Infinity) return NEEDS_MAPPING
    scratch.scan.knowMaximum(max)
    if (m === 0) return -1
    return drawFromCandidates(key, order, weights, m, weigh(key, order, m, max, p.temperature, weights), p, rng)
  }
  // top_p scans the row in the same read as its first quickselect round.
  if (!greedy && p.topP < 1) return pickNucleus(key, n, p, scratch, rng)
  const scan = scratch.scan.scan(key, n)
  if (scan.needsMapping) return NEEDS_MAPPING
  if (greedy) return scan.argmax
  if (scan.finite === 0) return -1
  if (p.minP > 0) return pickAboveMinP(key, n, p, scan, scratch, rng)
  return pickPlain(key, n, scan.max, p, order, weights, rng)
}
