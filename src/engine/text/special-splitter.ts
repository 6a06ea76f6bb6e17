/**
 * Finds special-token strings in trusted text (the rendered chat template):
 * longest match first, left to right, as the tokenizer library matches added
 * tokens. The text between matches is left to the ordinary tokenizer.
 */

export interface SpecialToken {
  id: number
  content: string
  /** Swallows whitespace on its left (tokenizer.json `lstrip`). */
  lstrip: boolean
  /** Swallows whitespace on its right (tokenizer.json `rstrip`). */
  rstrip: boolean
}

interface TrieNode {
  next: Map<string, TrieNode>
  token?: SpecialToken
}

/** A piece of split text: ordinary text, or the id of a special token. */
export type Segment = string | number

export class SpecialSplitter {
  readonly #root: TrieNode = { next: new Map() }

  constructor(tokens: readonly SpecialToken[]) {
    for (const token of tokens) {
      let node = this.#root
      // UTF-16 units, as `split` walks the text.
      for (let k = 0; k < token.content.length; k++) {
        const unit = token.content[k] as string
        let child = node.next.get(unit)
        if (child === undefined) node.next.set(unit, (child = { next: new Map() }))
        node = child
      }
      node.token = token
    }
  }

  /** Splits `text` into ordinary text and special-token ids, as the tokenizer does: `lstrip` / `rstrip` applied, empty text dropped. */
  split(text: string): Segment[] {
    return stripAround(this.splitRaw(text))
  }

  /** Splits `text` into its text and the special tokens found in it; every character of `text` is kept. */
  splitRaw(text: string): Array<string | SpecialToken> {
    const raw: Array<string | SpecialToken> = []
    let start = 0
    let i = 0
    while (i < text.length) {
      const match = this.#longestAt(text, i)
      if (match === undefined) {
        i++
        continue
      }
      if (i > start) raw.push(text.slice(start, i))
      raw.push(match)
      i += match.content.length
      start = i
    }
    if (start < text.length) raw.push(text.slice(start))
    return raw
  }

  #longestAt(text: string, at: number): SpecialToken | undefined {
    let node: TrieNode | undefined = this.#root
    let match: SpecialToken | undefined
    for (let j = at; j < text.length; j++) {
      node = node.next.get(text[j] as string)
      if (node === undefined) break
      if (node.token !== undefined) match = node.token
    }
    return match
  }
}

/** Applies `lstrip` / `rstrip` to the neighbouring text, then keeps only non-empty text. */
function stripAround(raw: Array<string | SpecialToken>): Segment[] {
  raw.forEach((piece, i) => {
    if (typeof piece === 'string') return
    const before = raw[i - 1]
    const after = raw[i + 1]
    if (piece.lstrip && typeof before === 'string') raw[i - 1] = before.trimEnd()
    if (piece.rstrip && typeof after === 'string') raw[i + 1] = after.trimStart()
  })
  const segments: Segment[] = []
  for (const piece of raw) {
    if (typeof piece !== 'string') segments.push(piece.id)
    else if (piece.length > 0) segments.push(piece)
  }
  return segments
}
