/**
 * Engine events → OpenAI objects: the `chat.completion` of a whole request and
 * the `chat.completion.chunk`s of a stream. Pure functions of their inputs.
 *
 *   stream, per choice:  role chunk ─► content chunks ─► finish chunk (empty delta)
 *   then, with include_usage:  one chunk with `choices: []` and usage (usage: null on all before)
 */
import { randomBytes } from 'node:crypto'
import type { FinishReason, TokenLogprob, Usage } from '../../batching/client-types.js'
import type { ToolCallDelta } from './tool-call-stream.js'
import { parseToolCalls, type ToolCalling } from './tools.js'

/** A choice's finish reason on the wire: a completed call is `tool_calls`. */
export type WireFinishReason = FinishReason | 'tool_calls'

export interface CompletionMeta {
  id: string
  created: number
  model: string
  systemFingerprint: string
}

export interface OpenAiTopLogprob {
  token: string
  logprob: number
  bytes: number[]
}
export interface OpenAiTokenLogprob extends OpenAiTopLogprob {
  top_logprobs: OpenAiTopLogprob[]
}
export interface OpenAiLogprobs {
  content: OpenAiTokenLogprob[]
  refusal: null
}
export interface OpenAiUsage {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
  prompt_tokens_details: { cached_tokens: number }
}

export function completionMeta(model: string, systemFingerprint: string, now = Date.now()): CompletionMeta {
  return {
    id: `chatcmpl-${randomBytes(16).toString('hex')}`,
    created: Math.floor(now / 1000),
    model,
    systemFingerprint,
  }
}

export function toOpenAiLogprob(lp: TokenLogprob): OpenAiTokenLogprob {
  return {
    token: lp.text,
    logprob: lp.logprob,
    bytes: lp.bytes,
    top_logprobs: lp.top.map((t) => ({ token: t.text, logprob: t.logprob, bytes: t.bytes })),
  }
}

export function toOpenAiUsage(usage: Usage): OpenAiUsage {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.totalTokens,
    prompt_tokens_details: { cached_tokens: usage.cachedPromptTokens },
  }
}

/** What one choice has produced so far (non-streaming). */
export interface ChoiceResult {
  text: string
  logprobs: OpenAiTokenLogprob[] | undefined
  finishReason: FinishReason | undefined
}

export function emptyChoices(n: number, withLogprobs: boolean): ChoiceResult[] {
  return Array.from({ length: n }, () => ({
    text: '',
    logprobs: withLogprobs ? [] : undefined,
    finishReason: undefined,
  }))
}

/**
 * The whole answer. With tool calling, a choice whose grammar completed is its
 * calls (`content: null`); one cut short by max_tokens keeps its partial text.
 */
export function chatCompletion(
  meta: CompletionMeta,
  choices: readonly ChoiceResult[],
  usage: Usage,
  calling?: ToolCalling,
) {
  return {
    id: meta.id,
    object: 'chat.completion' as const,
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.systemFingerprint,
    choices: choices.map((c, index) => {
      // A choice with no finish event ended with the request; only 'length' can cut it short.
      const finish = c.finishReason ?? 'length'
      const logprobs = c.logprobs === undefined ? null : { content: c.logprobs, refusal: null }
      if (calling !== undefined && finish === 'stop') {
        const message = {
          role: 'assistant' as const,
          content: null,
          refusal: null,
          tool_calls: parseToolCalls(c.text, calling),
        }
        return { index, message, logprobs, finish_reason: 'tool_calls' as WireFinishReason }
      }
      return {
        index,
        message: { role: 'assistant' as const, content: c.text as string | null, refusal: null },
        logprobs,
        finish_reason: finish as WireFinishReason,
      }
    }),
    usage: toOpenAiUsage(usage),
  }
}

type Delta =
  { role: 'assistant'; content: string } | { content: string } | { tool_calls: ToolCallDelta[] } | Record<string, never>

export interface ChunkChoice {
  index: number
  delta: Delta
  logprobs: OpenAiLogprobs | null
  finish_reason: WireFinishReason | null
}

/** Builds the chunks of one stream; `usage: null` on each only when include_usage asked for it. */
export class ChunkFactory {
  constructor(
    private readonly meta: CompletionMeta,
    private readonly includeUsage: boolean,
  ) {}

  private chunk(choices: ChunkChoice[], usage?: OpenAiUsage) {
    const base = {
      id: this.meta.id,
      object: 'chat.completion.chunk' as const,
      created: this.meta.created,
      model: this.meta.model,
      system_fingerprint: this.meta.systemFingerprint,
      choices,
    }
    return this.includeUsage ? { ...base, usage: usage ?? null } : base
  }

  role(index: number) {
    return this.chunk([{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }])
  }

  content(index: number, text: string, logprobs: readonly TokenLogprob[] | undefined) {
    const lp = logprobs === undefined ? null : { content: logprobs.map(toOpenAiLogprob), refusal: null as null }
    return this.chunk([{ index, delta: { content: text }, logprobs: lp, finish_reason: null }])
  }

  /** Tool-call deltas of a choice: a call's header, then its argument fragments (clients join them by `index`). */
  toolCalls(index: number, deltas: ToolCallDelta[]) {
    return this.chunk([{ index, delta: { tool_calls: deltas }, logprobs: null, finish_reason: null }])
  }

  finish(index: number, reason: WireFinishReason) {
    return this.chunk([{ index, delta: {}, logprobs: null, finish_reason: reason }])
  }

  usage(usage: Usage) {
    return this.chunk([], toOpenAiUsage(usage))
  }
}
