/**
 * The context rules, each stated once. A sequence's prompt and the blocks it
 * may generate must fit the model's context (positions, one per block):
 *
 *   newTokenBudget   what a request may generate, or context_length_exceeded with the numbers
 *                    (the engine loop sizes every request with it; Engine.add guards with it)
 *   fitsContext      the bare rule (the scheduler refuses a sequence that breaks it)
 *   reachedLength    the length stop after a sampled block (the engine's sequence and the
 *                    scheduler both end a sequence where it says)
 *
 * The routes do not check the context: only the engine knows a prompt's length.
 */
import { KelixError } from '../errors/kelix-error.js'

/** Whether a prompt of `promptTokens` positions plus `maxNewTokens` generated blocks fits a context of `context` positions. */
export function fitsContext(promptTokens: number, maxNewTokens: number, context: number): boolean {
  return promptTokens + maxNewTokens <= context
}

export interface TokenBudgetRequest {
  /** The model's context, positions. */
  context: number
  /** The prompt's positions, image positions included. */
  promptTokens: number
  /** Of those, the images' (named in the message). Default 0. */
  imagePositions?: number
  /** Blocks asked for; undefined: the rest of the context, capped by `defaultCap`. 0 only to score the prompt. */
  requested: number | undefined
  /** Cap on the default (the server's max tokens, the model's generation default). */
  defaultCap?: number
  /** Most prompt positions this server accepts; undefined: the context decides alone. */
  maxPromptTokens?: number
}

/**
 * The blocks a sequence may generate: as requested, or by default the rest of
 * the context (capped). Throws context_length_exceeded, with OpenAI's message
 * and the numbers, when the prompt is over the server's limit or the prompt and
 * the blocks do not fit the context (a default needs room for at least one).
 */
export function newTokenBudget(r: TokenBudgetRequest): number {
  if (r.maxPromptTokens !== undefined && r.promptTokens > r.maxPromptTokens) {
    throw new KelixError(
      'context_length_exceeded',
      `The prompt has ${r.promptTokens} tokens (${r.imagePositions ?? 0} of them image positions); this server accepts at most ${r.maxPromptTokens}. Please reduce the length of the messages.`,
      { limit: r.maxPromptTokens },
    )
  }
  const budget = r.requested ?? Math.min(r.context - r.promptTokens, r.defaultCap ?? Number.POSITIVE_INFINITY)
  // 0 only when asked for (a prompt to score): a prompt that fills the context leaves no room for a default.
  if (!fitsContext(r.promptTokens, budget, r.context) || budget < (r.requested === 0 ? 0 : 1)) {
    const completion = Math.max(1, budget)
    throw new KelixError(
      'context_length_exceeded',
      `This model's maximum context length is ${r.context} tokens. However, you requested ${r.promptTokens + completion} tokens (${r.promptTokens} in the messages, ${completion} in the completion). Please reduce the length of the messages or completion.`,
      { limit: r.context },
    )
  }
  return budget
}

/**
 * The length stop, checked after each sampled block: a sequence that has
 * generated its `maxNewTokens` blocks, or whose `length` (prompt plus
 * generated) reached the context, ends with 'length'.
 */
export function reachedLength(generated: number, maxNewTokens: number, length: number, context: number): boolean {
  return generated >= maxNewTokens || length >= context
}
