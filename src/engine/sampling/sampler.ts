/**
 * One sequence's sampler: turns a logits row and an allowed id range into one token id.
 *
 * Processing order, all inside the allowed range `[lo, hi)`:
 *
 *   1. logit_bias          −100 bans (−∞), +100 forces (all other ids −∞), otherwise added
 *   2. repetition_penalty  ids in prompt or output: positive logit ÷ penalty, negative × penalty
 *   3. presence/frequency  ids in output: logit − presence·[count > 0] − frequency·count
 *   4. logprobs            log-softmax at temperature 1 of the logits after steps 1–3
 *   5. greedy              temperature 0 or top_k 1: argmax, lowest id on ties, no randomness
 *   6. temperature         weights exp((logit − max) / temperature)
 *   7. top_k               the k best, one pass with a k-entry heap (no sort)
 *   8. top_p               smallest set of best ids whose mass ≥ top_p (weighted quickselect, no sort)
 *   9. min_p               drop ids whose probability < min_p · p(max)
 *  10. draw                one `rng.nextFloat()`, inverse CDF over the remaining ids
 *
 * If steps 1–3 leave no finite logit in range (every id of the range banned), they are lifted for
 * this call and the raw row is used, so a request can never stall a batch. NaN logits count as −∞
 * and +∞ as the largest float32.
 *
 * Steps 5–10 read the row in place when steps 1–3 have nothing to change and it holds no NaN or +∞
 * (no copy), and take a shortcut per parameter set (pick.ts) that picks the very id the plain
 * path (draw.ts) would, for the same row and random state.
 */
import type { SamplingParams } from '../types.js'
import { LogitBias } from './logit-bias.js'
import { logprobsOf, type TopLogprob } from './logprobs.js'
import { applyPresenceFrequency, applyRepetitionPenalty } from './penalties.js'
import { pickIndex } from './pick.js'
import type { Rng } from './rng.js'
import { NEEDS_MAPPING } from './row-scan.js'
import { SamplerScratch } from './scratch.js'
import type { TokenHistory } from './token-history.js'
import { validateSamplingParams } from './validate.js'

const FLOAT32_MAX = 3.4028234663852886e38

export interface SampleResult {
  id: number
  /** Log-probability of `id` (see step 4); present only when `topLogprobs` is a number. */
  logprob?: number
  /** The `topLogprobs` best ids, best first; present only when `topLogprobs` is a number. */
  top?: TopLogprob[]
}

/** Copies `src[lo..lo+n)` to `dst[0..n)`; NaN becomes −∞ and +∞ the largest float32. */
function copyRow(src: Float32Array, lo: number, n: number, dst: Float32Array): void {
  for (let i = 0; i < n; i++) {
    const x = src[lo + i]!
    dst[i] = x < Infinity ? x : x === Infinity ? FLOAT32_MAX : -Infinity
  }
}

export class Sampler {
  private readonly bias: LogitBias
  private readonly scratch: SamplerScratch
  /** Whether steps 1–3 can change a row (otherwise it is read in place). */
  private readonly editsRow: boolean

  /**
   * Validates `params` (throws `KelixError('invalid_value')`, logit_bias ids must be below
   * `vocabSize`) and prepares the per-token state. Pass a shared `scratch` to avoid its
   * vocabulary-sized buffers per sequence.
   */
  constructor(
    readonly params: SamplingParams,
    readonly vocabSize: number,
    scratch?: SamplerScratch,
  ) {
    validateSamplingParams(params, vocabSize)
    this.scratch = scratch ?? new SamplerScratch(vocabSize)
    if (this.scratch.size < vocabSize) {
      throw new RangeError(`sampler scratch holds ${this.scratch.size} ids, the vocabulary has ${vocabSize}`)
    }
    this.bias = new LogitBias(params.logitBias)
    this.editsRow =
      params.logitBias.size > 0 ||
      params.repetitionPenalty !== 1 ||
      params.presencePenalty !== 0 ||
      params.frequencyPenalty !== 0
  }

  /**
   * Picks one id in `[lo, hi)` from `logits`, which holds id `firstId + i` at index `i` (a whole
   * row when `firstId` is 0, or one vocabulary part; possibly a view into a batch buffer; it is
   * only read). `history` feeds the penalties and is not updated here: the caller adds the id it
   * keeps. Allocates only the result (and the top list when asked for) and a few small objects.
   */
  sample(logits: Float32Array, lo: number, hi: number, history: TokenHistory, rng: Rng, firstId = 0): SampleResult {
    if (!(
      Number.isInteger(lo) &&
      Number.isInteger(hi) &&
      lo >= firstId &&
      lo < hi &&
      hi <= Math.min(this.vocabSize, firstId + logits.length)
    )) {
      throw new RangeError(
        `allowed range [${lo}, ${hi}) is empty or outside the logits row of ids [${firstId}, ${firstId + logits.length})`,
      )
    }
    const p = this.params
    const n = hi - lo
    const offset = lo - firstId
    let row = this.editsRow
      ? this.processedCopy(logits, lo, hi, history, firstId)
      : offset === 0
        ? logits
        : logits.subarray(offset, offset + n)
    let chosen = pickIndex(row, n, p, this.scratch, rng)
    // Read in place, the row held NaN or +∞: map them, as the copy does.
    if (chosen === NEEDS_MAPPING) {
      row = this.mappedCopy(logits, offset, n)
      chosen = pickIndex(row, n, p, this.scratch, rng)
    }
    if (chosen < 0) {
      row = this.mappedCopy(logits, offset, n)
      // Only a row with no finite value at all ends up at `lo`.
      chosen = Math.max(0, pickIndex(row, n, p, this.scratch, rng))
    }
    const id = lo + chosen
    if (p.topLogprobs === undefined) return { id }
    const { logprob, top } = logprobsOf(row, n, this.scratch.scan.max, lo, chosen, p.topLogprobs, this.scratch.top)
    return { id, logprob, top }
  }

  /** The row after steps 1–3, in `scratch.logits`. */
  private processedCopy(
    logits: Float32Array,
    lo: number,
    hi: number,
    history: TokenHistory,
    firstId: number,
  ): Float32Array {
    const p = this.params
    const row = this.mappedCopy(logits, lo - firstId, hi - lo)
    this.bias.apply(row, lo, hi)
    applyRepetitionPenalty(row, lo, hi, history, p.repetitionPenalty)
    applyPresenceFrequency(row, lo, hi, history, p.presencePenalty, p.frequencyPenalty)
    return row
  }

  /** `logits[offset..offset+n)` copied to `scratch.logits`, NaN → −∞ and +∞ → the largest float32. */
  private mappedCopy(logits: Float32Array, offset: number, n: number): Float32Array {
    const row = this.scratch.logits
    copyRow(logits, offset, n, row)
    return row
  }
}
