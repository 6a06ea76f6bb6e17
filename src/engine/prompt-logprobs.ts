/**
 * Log-probabilities of a prompt's own tokens (completions' `echo` with
 * `logprobs`, which is how evaluation harnesses score text): for each prompt
 * position p, the log-softmax at temperature 1 of the model's next-token
 * logits at p (the text part, <eob> excluded as generation excludes it), read
 * at the token that actually follows, plus the `top` best alternatives. The
 * first token has none (nothing precedes it).
 */
import { nextTextLogits } from './decode/block-decoding.js'
import type { KelixModel } from './model.js'
import { logprobsOf } from './sampling/logprobs.js'
import type { TextTokenizer } from './text/tokenizer.js'
import type { TokenLogprob } from './types.js'

/**
 * The logprobs of the tokens at positions `first + 1 …` given the hidden
 * states of positions `first …` (`count` of them); `nextIds[i]` is the token
 * after state i.
 */
export async function promptLogprobs(
  model: KelixModel,
  tokenizer: TextTokenizer,
  states: Float32Array,
  nextIds: readonly number[],
  top: number,
): Promise<TokenLogprob[]> {
  const { eob } = model.config.special_tokens
  const buf = new Int32Array(Math.max(1, top))
  const token = (id: number) => ({ id, text: tokenizer.tokenText(id), bytes: [...tokenizer.tokenBytes(id)] })
  const out: TokenLogprob[] = []
  await nextTextLogits(model, states, nextIds.length, (a, { values, firstId }) => {
    values[eob - firstId] = -Infinity
    let max = -Infinity
    for (let i = 0; i < values.length; i++) if ((values[i] as number) > max) max = values[i] as number
    const id = nextIds[a] as number
    const { logprob, top: best } = logprobsOf(values, values.length, max, firstId, id - firstId, top, buf)
    out.push({ ...token(id), logprob, top: best.map((t) => ({ ...token(t.id), logprob: t.logprob })) })
  })
  return out
}
