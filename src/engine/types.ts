/**
 * The engine's public nouns: what a request carries in, what comes out.
 * Plain data only, so they cross a worker_threads boundary unchanged.
 */

export type ImageDetail = 'auto' | 'low' | 'high'

/** An image already fetched: its encoded bytes (PNG, JPEG, WEBP, GIF). */
export interface ImageInput {
  bytes: Uint8Array
  detail: ImageDetail
}

export type ContentPart = { type: 'text'; text: string } | { type: 'image'; image: ImageInput }

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant'
  content: string | ContentPart[]
}

/** Per-sequence sampling controls, with the defaults the API layer fills in. */
export interface SamplingParams {
  /** 0 means greedy. */
  temperature: number
  /** Nucleus mass in (0, 1]; 1 disables. */
  topP: number
  /** 0 disables. */
  topK: number
  /** Drops tokens below minP × p(max); 0 disables. */
  minP: number
  /** OpenAI semantics: subtracted once per token already generated. */
  presencePenalty: number
  /** OpenAI semantics: subtracted per occurrence in the generated text. */
  frequencyPenalty: number
  /** CTRL/HF semantics over prompt and output: divide positive logits, multiply negative; 1 disables. */
  repetitionPenalty: number
  /** Token id → bias added to the logit (−100 bans, +100 forces). */
  logitBias: ReadonlyMap<number, number>
  /** Same seed and request → same output, alone or batched. Undefined: drawn at random. */
  seed: number | undefined
  /** How many top alternatives to report per emitted text token; undefined: no logprobs. */
  topLogprobs: number | undefined
}

export const GREEDY: SamplingParams = {
  temperature: 0,
  topP: 1,
  topK: 0,
  minP: 0,
  presencePenalty: 0,
  frequencyPenalty: 0,
  repetitionPenalty: 1,
  logitBias: new Map(),
  seed: 0,
  topLogprobs: undefined,
}

export interface TokenLogprob {
  id: number
  text: string
  /** The token's raw bytes: a token that ends inside a UTF-8 character has bytes its `text` (U+FFFD) cannot show. */
  bytes: number[]
  logprob: number
  top: Array<{ id: number; text: string; bytes: number[]; logprob: number }>
}

export type FinishReason = 'stop' | 'length'

/** One prompt token as reported back: its logprob is null for the first token (nothing precedes it). */
export type EchoedToken = Omit<TokenLogprob, 'logprob'> & { logprob: number | null }

/** The prompt as reported back (completions' `echo`): its text, and per token its logprob when asked for. */
export interface EchoedPrompt {
  text: string
  logprobs: EchoedToken[] | undefined
}

/**
 * What a chat answer must be, enforced token by token (src/engine/grammar):
 * any JSON object, or JSON that validates against `schema`. `strict` refuses
 * properties and array items the schema does not name.
 */
export type ResponseFormat =
  { type: 'json_object' } | { type: 'json_schema'; schema: Record<string, unknown>; strict: boolean }
