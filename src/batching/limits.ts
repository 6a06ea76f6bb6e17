/**
 * The scheduling limits' defaults, and the one check of how they combine.
 * Plain data and one pure function, shared by the server's configuration
 * (flags and variables), the engine client, the worker (which knows the
 * model's context) and the scheduler: each names the limits as its user knows
 * them, none corrects a bad combination.
 */
import type { SchedulingLimits } from './protocol.js'

/** 32 sequences, 512 blocks per step, KV for 64k positions in pages of 16. */
export const DEFAULT_LIMITS: Readonly<SchedulingLimits> = Object.freeze({
  maxNumSeqs: 32,
  maxBatchedTokens: 512,
  kvCapacity: 65_536,
  pageSize: 16,
})

/** How the limits (and the model's context) are called where the check runs; an option's own name by default. */
export type LimitNames = Partial<Record<keyof SchedulingLimits | 'context', string>>

/**
 * What is wrong with how the limits combine, as one line naming them, or
 * undefined. Each limit is assumed a positive integer already:
 *
 *   maxBatchedTokens >= maxNumSeqs   every running sequence's decode fits one step (else a prefill can starve)
 *   kvCapacity >= pageSize           the cache holds at least one page
 *   usable KV >= context             one full-length sequence fits the cache alone (else it can never finish)
 */
export function limitsProblem(
  limits: SchedulingLimits,
  context: number | undefined,
  names: LimitNames = {},
): string | undefined {
  const name = (key: keyof LimitNames) => names[key] ?? (key === 'context' ? "the model's context" : key)
  const { maxNumSeqs, maxBatchedTokens, kvCapacity, pageSize } = limits
  if (maxBatchedTokens < maxNumSeqs) {
    return `${name('maxBatchedTokens')} (${maxBatchedTokens}) must be >= ${name('maxNumSeqs')} (${maxNumSeqs}): every running sequence's decode must fit in one step`
  }
  if (kvCapacity < pageSize) {
    return `${name('kvCapacity')} (${kvCapacity}) must be >= ${name('pageSize')} (${pageSize}): the KV cache must hold at least one page`
  }
  const usable = Math.floor(kvCapacity / pageSize) * pageSize
  if (context !== undefined && usable < context) {
    return `${name('kvCapacity')} (${kvCapacity}) must hold ${name('context')} (${context}) alone, in whole pages of ${pageSize} (${usable} usable positions): one full-length sequence must fit the KV cache`
  }
  return undefined
}
