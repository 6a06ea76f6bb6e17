/**
 * Keeps text a client wrote from becoming special tokens when it passes
 * through the chat template. Before rendering, every special-token string in a
 * client's text, and any piece at either end of it that could join the
 * neighbouring text into one, is swapped for a private-use character that
 * occurs nowhere else; after the rendered prompt is split at the template's
 * own special tokens, the characters are swapped back and encoded as ordinary
 * text.
 *
 *     client text   "hi <|im_end|>x<|im_"
 *     protected     "hi \uE000x\uE001"        (template renders around it)
 *     restored      "hi <|im_end|>x<|im_"     (after the special-token split)
 *
 * The template itself is trusted: it is assumed never to write half of a
 * special token next to a client's text.
 */
import { SpecialSplitter, type SpecialToken } from './special-splitter.js'
import { KelixError } from '../../errors/kelix-error.js'

const FIRST_PRIVATE_USE = 0xe000
const LAST_PRIVATE_USE = 0xf8ff

export class UserTextGuard {
  readonly #splitter: SpecialSplitter
  readonly #prefixes = new Set<string>()
  readonly #suffixes = new Set<string>()
  readonly #longest: number
  readonly #taken = new Set<number>()
  readonly #charOf = new Map<string, string>()
  readonly #fragmentOf = new Map<string, string>()
  #nextFree = FIRST_PRIVATE_USE

  /**
   * @param specials every special token of the tokenizer
   * @param inputs the template source and every client text: the placeholders avoid their characters
   */
  constructor(specials: readonly SpecialToken[], inputs: Iterable<string>) {
    this.#splitter = new SpecialSplitter(specials)
    for (const { content } of specials) {
      for (let k = 1; k < content.length; k++) {
        this.#prefixes.add(content.slice(0, k))
        this.#suffixes.add(content.slice(k))
      }
    }
    this.#longest = Math.max(0, ...specials.map((t) => t.content.length))
    for (const text of [...inputs, ...specials.map((t) => t.content)]) {
      for (let i = 0; i < text.length; i++) {
        const unit = text.charCodeAt(i)
        if (unit >= FIRST_PRIVATE_USE && unit <= LAST_PRIVATE_USE) this.#taken.add(unit)
      }
    }
  }

  /** `text` with every special-token string, and any partial one at either end, replaced by a placeholder. */
  protect(text: string): string {
    const pieces = this.#splitter.splitRaw(text)
    return pieces
      .map((piece, i) => {
        if (typeof piece !== 'string') return this.#placeholder(piece.content)
        const head = i === 0 ? this.#edge(piece, this.#suffixes, 'head') : 0
        const tail = i === pieces.length - 1 ? this.#edge(piece, this.#prefixes, 'tail') : 0
        if (head === 0 && tail === 0) return piece
        if (head + tail >= piece.length) return this.#placeholder(piece)
        return (
          this.#placeholder(piece.slice(0, head)) +
          piece.slice(head, piece.length - tail) +
          this.#placeholder(piece.slice(piece.length - tail))
        )
      })
      .join('')
  }

  /** Puts back what `protect` replaced. */
  restore(text: string): string {
    if (this.#fragmentOf.size === 0) return text
    const placeholders = new RegExp(`[${[...this.#fragmentOf.keys()].join('')}]`, 'g')
    return text.replace(placeholders, (char) => this.#fragmentOf.get(char) ?? char)
  }

  /** Length of the longest piece at the given end of `text` that belongs to `pieces` (0 when none). */
  #edge(text: string, pieces: ReadonlySet<string>, end: 'head' | 'tail'): number {
    for (let k = Math.min(this.#longest - 1, text.length); k > 0; k--) {
      if (pieces.has(end === 'head' ? text.slice(0, k) : text.slice(text.length - k))) return k
    }
    return 0
  }

  #placeholder(fragment: string): string {
    if (fragment.length === 0) return ''
    const known = this.#charOf.get(fragment)
    if (known !== undefined) return known
    while (this.#taken.has(this.#nextFree)) this.#nextFree++
    if (this.#nextFree > LAST_PRIVATE_USE) {
      throw new KelixError(
        'invalid_prompt',
        'the messages use every private-use character, so special-token text in them cannot be protected',
      )
    }
    const char = String.fromCharCode(this.#nextFree++)
    this.#charOf.set(fragment, char)
    this.#fragmentOf.set(char, fragment)
    return char
  }
}
