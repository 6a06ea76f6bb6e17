/**
 * Turns generated token ids into text deltas as they arrive. The bytes of
 * text tokens go through one streaming UTF-8 decoder, so a character whose
 * bytes span several tokens is held back until its last byte arrives, and
 * each push costs only the new tokens.
 *
 * Invariant: the deltas of every `push` and `finish`, concatenated, equal
 * `tokenizer.decode(allIds, { skipSpecialTokens: true })`.
 */
import type { TextTokenizer } from './tokenizer.js'

export type DetokenizerTokenizer = Pick<TextTokenizer, 'tokenKind' | 'tokenBytes' | 'tokenText'>

export class IncrementalDetokenizer {
  readonly #tokenizer: DetokenizerTokenizer
  // ignoreBOM keeps a leading U+FEFF, as the tokenizer's decode does.
  readonly #utf8 = new TextDecoder('utf-8', { ignoreBOM: true })
  #finished = false

  constructor(tokenizer: DetokenizerTokenizer) {
    this.#tokenizer = tokenizer
  }

  /** Adds generated ids; returns the text they complete (possibly empty). Special tokens add nothing. */
  push(ids: number | readonly number[]): string {
    if (this.#finished) throw new Error('IncrementalDetokenizer: push after finish')
    let delta = ''
    for (const id of typeof ids === 'number' ? [ids] : ids) {
      const kind = this.#tokenizer.tokenKind(id)
      if (kind === 'text') delta += this.#utf8.decode(this.#tokenizer.tokenBytes(id), { stream: true })
      // A non-special added token ends the byte run before it, as in decode.
      else if (kind === 'added') delta += this.#utf8.decode() + this.#tokenizer.tokenText(id)
    }
    return delta
  }

  /** Ends the sequence: returns what is held back, with an incomplete character as U+FFFD. Idempotent. */
  finish(): string {
    if (this.#finished) return ''
    this.#finished = true
    return this.#utf8.decode()
  }
}
