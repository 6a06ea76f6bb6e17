/**
 * One sequence's grammar state: which text ids may come next. Each step the
 * engine asks for the next mask while the LLM runs (`prepare`), the sampler
 * sees the row with every other id at −∞ (`apply`), and the chosen id moves
 * the grammar on (`accept`). Sampling settings still apply inside the allowed
 * set, after the mask.
 */
import type { PartLogits } from '../decode/block-decoding.js'
import type { XGrammarMatcher } from './xgrammar.js'

export class TokenConstraint {
  private mask: Int32Array | undefined
  private disposed = false

  constructor(private readonly matcher: XGrammarMatcher) {}

  /** Computes the mask for the next id; resolves to the milliseconds it took. */
  async prepare(): Promise<number> {
    const started = performance.now()
    this.mask = await this.matcher.getNextTokenBitmask()
    return performance.now() - started
  }

  /** Sets every id the grammar does not allow to −∞ (ids past the mask's vocabulary too). */
  apply(logits: PartLogits): void {
    const mask = this.mask
    if (mask === undefined) throw new Error('TokenConstraint.apply before prepare')
    const { values, firstId } = logits
    for (let i = 0; i < values.length;) {
      const id = firstId + i
      const word = mask[id >>> 5]
      // A whole word allowed (the common case inside a JSON string) is skipped at once.
      if (word === -1 && (id & 31) === 0 && i + 32 <= values.length) {
        i += 32
        continue
      }
      if (word === undefined || ((word >>> (id & 31)) & 1) === 0) values[i] = -Infinity
      i++
    }
  }

  /** Moves the grammar past `id`; false when the grammar does not allow it (a dead end). */
  accept(id: number): boolean {
    this.mask = undefined
    return this.matcher.acceptToken(id)
  }

  /** Whether the grammar has accepted its stop token: the answer is complete. */
  get terminated(): boolean {
    return this.matcher.isTerminated()
  }

  /** Frees the matcher's WebAssembly memory; idempotent. */
  dispose(): void {
    if (this.disposed) return
    this.disposed = true
    this.matcher.dispose()
  }
}
