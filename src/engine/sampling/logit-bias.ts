/**
 * OpenAI `logit_bias`, prepared once per request. −100 bans a token (its logit becomes −∞, so it
 * has probability 0 at any temperature); +100 forces it (every other id in range becomes −∞).
 * Between the two, the bias is added to the logit.
 */
import { BIAS_LIMIT } from './validate.js'

export class LogitBias {
  private readonly ids: Int32Array
  private readonly values: Float64Array
  /** Forced ids of the current row, as local indices, and their biased logits. */
  private readonly forcedIndex: Int32Array
  private readonly forcedLogit: Float32Array

  constructor(bias: ReadonlyMap<number, number>) {
    this.ids = Int32Array.from(bias.keys())
    this.values = Float64Array.from(bias.values())
    this.forcedIndex = new Int32Array(this.ids.length)
    this.forcedLogit = new Float32Array(this.ids.length)
  }

  /** Applies the bias to `logits`, which holds the ids `[lo, hi)` at indices `0..hi-lo`. */
  apply(logits: Float32Array, lo: number, hi: number): void {
    let forced = 0
    for (let j = 0; j < this.ids.length; j++) {
      const id = this.ids[j]!
      if (id < lo || id >= hi) continue
      const i = id - lo
      const bias = this.values[j]!
      if (bias <= -BIAS_LIMIT) {
        logits[i] = -Infinity
        continue
      }
      logits[i] = logits[i]! + bias
      if (bias >= BIAS_LIMIT && logits[i]! > -Infinity) {
        this.forcedIndex[forced] = i
        this.forcedLogit[forced] = logits[i]!
        forced++
      }
    }
    if (forced === 0) return
    logits.fill(-Infinity, 0, hi - lo)
    for (let k = 0; k < forced; k++) logits[this.forcedIndex[k]!] = this.forcedLogit[k]!
  }
}
