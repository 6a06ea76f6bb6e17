/**
 * Completions' choices as they grow: each choice's text and its legacy
 * logprobs (`tokens`, `token_logprobs`, `top_logprobs`, `text_offset`, the
 * offsets counted in the choice's text, echoed prompt included). Generations
 * (one per prompt) are told apart by their index: choice `i` of prompt `p` is
 * `p × n + i`. Each change is returned as the piece a stream sends.
 */
import type { EchoedToken, FinishReason, TokenLogprob } from '../../batching/client-types.js'

export interface LegacyLogprobs {
  tokens: string[]
  token_logprobs: Array<number | null>
  top_logprobs: Array<Record<string, number> | null>
  text_offset: number[]
}

export interface CompletionChoice {
  index: number
  text: string
  logprobs: LegacyLogprobs | null
  finish_reason: FinishReason | null
}

export class CompletionChoices {
  private readonly choices: CompletionChoice[]

  constructor(
    prompts: number,
    private readonly n: number,
    private readonly withLogprobs: boolean,
  ) {
    this.choices = Array.from({ length: prompts * n }, (_, index) => ({
      index,
      text: '',
      logprobs: withLogprobs ? { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] } : null,
      finish_reason: null,
    }))
  }

  /** The echoed prompt of prompt `p`, into each of its choices; the pieces to stream. */
  echo(p: number, text: string, tokens: readonly EchoedToken[] | undefined): CompletionChoice[] {
    return Array.from({ length: this.n }, (_, i) => this.append(p * this.n + i, text, tokens))
  }

  /** Generated text (and its tokens' logprobs) for choice `i` of prompt `p`. */
  delta(p: number, i: number, text: string, tokens: readonly TokenLogprob[] | undefined): CompletionChoice {
    return this.append(p * this.n + i, text, tokens)
  }

  finish(p: number, i: number, reason: FinishReason): CompletionChoice {
    const choice = this.choices[p * this.n + i] as CompletionChoice
    choice.finish_reason = reason
    return { index: choice.index, text: '', logprobs: null, finish_reason: reason }
  }

  /** Every choice, whole; one that never saw its finish ended with the request (`length`). */
  all(): CompletionChoice[] {
    return this.choices.map((c) => ({ ...c, finish_reason: c.finish_reason ?? 'length' }))
  }

  private append(
    index: number,
    text: string,
    tokens: ReadonlyArray<EchoedToken | TokenLogprob> | undefined,
  ): CompletionChoice {
    const choice = this.choices[index] as CompletionChoice
    const piece: LegacyLogprobs | null = this.withLogprobs ? legacy(tokens ?? [], choice.text.length) : null
    choice.text += text
    if (choice.logprobs !== null && piece !== null) {
      choice.logprobs.tokens.push(...piece.tokens)
      choice.logprobs.token_logprobs.push(...piece.token_logprobs)
      choice.logprobs.top_logprobs.push(...piece.top_logprobs)
      choice.logprobs.text_offset.push(...piece.text_offset)
    }
    return { index, text, logprobs: piece, finish_reason: null }
  }
}

/** Tokens in the legacy shape, offsets from `offset` on. */
function legacy(tokens: ReadonlyArray<EchoedToken | TokenLogprob>, offset: number): LegacyLogprobs {
  const out: LegacyLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] }
  let at = offset
  for (const t of tokens) {
    out.tokens.push(t.text)
    out.token_logprobs.push(t.logprob)
    out.top_logprobs.push(t.logprob === null ? null : Object.fromEntries(t.top.map((x) => [x.text, x.logprob])))
    out.text_offset.push(at)
    at += t.text.length
  }
  return out
}
