/**
 * Repetition penalties. Both walk only the ids the history holds, never the vocabulary, and touch
 * only ids inside the allowed range; `logits` holds the ids `[lo, hi)` at indices `0..hi-lo`.
 */
import type { TokenHistory } from './token-history.js'

/**
 * CTRL / Hugging Face repetition penalty over prompt and output: a positive logit is divided by
 * `penalty`, a negative one multiplied, so `penalty > 1` always makes a seen id less likely.
 */
export function applyRepetitionPenalty(
  logits: Float32Array,
  lo: number,
  hi: number,
  history: TokenHistory,
  penalty: number,
): void {
  if (penalty === 1) return
  for (let j = 0; j < history.seenSize; j++) {
    const id = history.seenId(j)
    if (id < lo || id >= hi) continue
    const x = logits[id - lo]!
    logits[id - lo] = x > 0 ? x / penalty : x * penalty
  }
}

/** OpenAI penalties over the output: `logit − presence·[count > 0] − frequency·count`. */
export function applyPresenceFrequency(
  logits: Float32Array,
  lo: number,
  hi: number,
  history: TokenHistory,
  presence: number,
  frequency: number,
): void {
  if (presence === 0 && frequency === 0) return
  for (let j = 0; j < history.generatedSize; j++) {
    const id = history.generatedId(j)
    if (id < lo || id >= hi) continue
    logits[id - lo] = logits[id - lo]! - presence - frequency * history.generatedCount(j)
  }
}
