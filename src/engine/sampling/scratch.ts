/**
 * Vocabulary-sized working memory for `Sampler.sample`, allocated once so the per-token path
 * allocates nothing in proportion to the vocabulary.
 *
 * `sample` is synchronous and keeps nothing in the scratch between calls, so every sampler on one
 * thread may share one instance (about 3.5 MB for 217,472 ids) instead of holding its own.
 */
import { RowScan } from './row-scan.js'
import { MAX_TOP_LOGPROBS } from './validate.js'

export class SamplerScratch {
  /** Processed logits of the allowed range, indexed by `id - lo`, when the row must be copied. */
  readonly logits: Float32Array
  /** Unnormalised probabilities at the sampling temperature, indexed like `logits`. */
  readonly weights: Float64Array
  /** Candidate indices into `logits`; selection permutes them in place. */
  readonly order: Int32Array
  /** The best indices for `top_logprobs`, best first. */
  readonly top: Int32Array
  /** What the current row holds (its maximum, its non-finite entries). */
  readonly scan = new RowScan()

  /** Working memory for rows of up to `size` ids. */
  constructor(readonly size: number) {
    this.logits = new Float32Array(size)
    this.weights = new Float64Array(size)
    this.order = new Int32Array(size)
    this.top = new Int32Array(MAX_TOP_LOGPROBS)
  }
}
