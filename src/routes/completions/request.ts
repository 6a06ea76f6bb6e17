/**
 * A validated completions request → one engine `GenerateRequest` per prompt:
 * the checks JSON Schema cannot express, OpenAI's defaults (16 tokens), and
 * `logprobs: k` as k alternatives per token.
 */
import type { GenerateRequest, GenerationDefaults, PlainPrompt } from '../../batching/client-types.js'
import { toSamplingParams, toStopList, type RequestLimits } from '../chat/request.js'
import type { CompletionRequestBody } from './schema.js'
import { KelixError } from '../../errors/kelix-error.js'
import { checkAtMost } from '../server-limits.js'

/** OpenAI's default `max_tokens` for completions. */
export const DEFAULT_MAX_TOKENS = 16
/** Most prompts in one request. */
export const MAX_PROMPTS = 64

/** The request's prompts, in order: each a text or token ids. */
export function promptsOf(body: CompletionRequestBody): PlainPrompt[] {
  const p = body.prompt
  if (typeof p === 'string') return [{ text: p }]
  if (p.every((x): x is number => typeof x === 'number')) return [{ ids: p }]
  return (p as Array<string | number[]>).map((x) => (typeof x === 'string' ? { text: x } : { ids: x }))
}

/** The checks between fields and against limits (the context is the engine's to check: src/engine/context-length.ts). */
export function checkCompletionRequest(
  body: CompletionRequestBody,
  prompts: readonly PlainPrompt[],
  limits: RequestLimits,
): void {
  if (body.suffix !== undefined && body.suffix !== null)
    throw new KelixError(
      'invalid_value',
      "Invalid 'suffix': this server does not insert text (it has no fill-in-the-middle prompt).",
      { param: 'suffix' },
    )
  const n = body.n ?? 1
  if (body.best_of !== undefined && body.best_of !== n)
    throw new KelixError(
      'invalid_value',
      `Invalid 'best_of': only best_of equal to n (${n}) is supported; this server does not rank choices.`,
      { param: 'best_of' },
    )
  if (body.stream_options !== undefined && body.stream !== true)
    throw new KelixError('invalid_value', "Invalid 'stream_options': only allowed when 'stream' is true.", {
      param: 'stream_options',
    })
  checkAtMost('n', n, limits.maxChoices)
  if (prompts.length > MAX_PROMPTS)
    throw new KelixError(
      'invalid_value',
      `Invalid 'prompt': expected at most ${MAX_PROMPTS} prompts, but got ${prompts.length}.`,
      { param: 'prompt' },
    )
  const max = body.max_tokens ?? DEFAULT_MAX_TOKENS
  if (limits.maxTokensLimit !== undefined) checkAtMost('max_tokens', max, limits.maxTokensLimit)
}

/** One prompt's GenerateRequest; omitted sampling fields take the model's `defaults`, an omitted max_tokens OpenAI's 16 (capped by the model's default). */
export function toCompletionGenerateRequest(
  body: CompletionRequestBody,
  prompt: PlainPrompt,
  limits: RequestLimits,
  defaults: GenerationDefaults,
): GenerateRequest {
  const logprobs = body.logprobs ?? undefined
  const request: GenerateRequest = {
    messages: [],
    prompt,
    n: body.n ?? 1,
    sampling: toSamplingParams({ ...body, logprobs: logprobs !== undefined, top_logprobs: logprobs }, defaults),
    maxNewTokens: body.max_tokens ?? Math.min(DEFAULT_MAX_TOKENS, defaults.maxNewTokens),
    stop: toStopList(body.stop),
  }
  if (body.echo === true) request.echo = { logprobs }
  if (limits.maxPromptTokens !== undefined) request.maxPromptTokens = limits.maxPromptTokens
  if (limits.requestTimeoutMs !== undefined) request.timeoutMs = limits.requestTimeoutMs
  return request
}

/** The size admission counts for one prompt. */
export function plainPromptEstimate(prompt: PlainPrompt): { textBytes: number; images: number } {
  return { textBytes: 'text' in prompt ? prompt.text.length : 3 * prompt.ids.length, images: 0 }
}
