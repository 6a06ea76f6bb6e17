/**
 * Log-probabilities reported to the client: log-softmax at temperature 1 of the processed logits
 * (after logit_bias and penalties) over the allowed range, so banned ids have −∞ and are never listed.
 */
import { topIndices } from './select.js'

/** One reported alternative. */
export interface TopLogprob {
  id: number
  logprob: number
}

/** log Σ exp(logits[0..n)), computed from the maximum for stability; −∞ when nothing is finite. */
export function logSumExp(logits: Float32Array, n: number): number {
  let max = -Infinity
  for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!
  if (max === -Infinity) return -Infinity
  let sum = 0
  for (let i = 0; i < n; i++) sum += Math.exp(logits[i]! - max)
  return max + Math.log(sum)
}

/**
 * The log-probability of local index `chosen` and the `count` best alternatives (best first, lower
 * id on ties, finite only). `logits` holds the ids `[lo, lo+n)`; `buf` has room for `count` indices.
 */
export function logprobsOf(
  logits: Float32Array,
  n: number,
  lo: number,
  chosen: number,
  count: number,
  buf: Int32Array,
): { logprob: number; top: TopLogprob[] } {
  const lse = logSumExp(logits, n)
  if (lse === -Infinity) return { logprob: -Infinity, top: [] }
  const size = topIndices(logits, n, count, buf)
  const top: TopLogprob[] = []
  for (let k = 0; k < size; k++) {
    const i = buf[k]!
    top.push({ id: lo + i, logprob: logits[i]! - lse })
  }
  return { logprob: logits[chosen]! - lse, top }
}
