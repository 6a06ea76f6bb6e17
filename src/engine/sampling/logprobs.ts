/**
 * Log-probabilities reported to the client: log-softmax at temperature 1 of the processed logits
 * (after logit_bias and penalties) over the allowed range, so banned ids have −∞ and are never listed.
 */
import { expSum } from './exp-sum.js'
import { topIndices } from './select.js'

/** One reported alternative. */
export interface TopLogprob {
  id: number
  logprob: number
}

/**
 * The log-probability of local index `chosen` and the `count` best alternatives (best first, lower
 * id on ties, finite only). `logits` holds the ids `[lo, lo+n)`, no +∞ (NaN counts as −∞), its
 * largest finite value is `max`; `buf` has room for `count` indices. Σ exp comes from `expSum`,
 * so the values are within about 1e-9 of the exact log-probabilities.
 */
export function logprobsOf(
  logits: Float32Array,
  n: number,
  max: number,
  lo: number,
  chosen: number,
  count: number,
  buf: Int32Array,
): { logprob: number; top: TopLogprob[] } {
  if (max === -Infinity) return { logprob: -Infinity, top: [] }
  const lse = max + Math.log(expSum(logits, n, max, 1))
  const size = topIndices(logits, n, count, buf)
  const top: TopLogprob[] = []
  for (let k = 0; k < size; k++) {
    const i = buf[k]!
    top.push({ id: lo + i, logprob: logits[i]! - lse })
  }
  return { logprob: logits[chosen]! - lse, top }
}
