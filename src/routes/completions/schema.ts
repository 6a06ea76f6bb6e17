/**
 * The (legacy) completions contract, `POST /v1/completions`, as JSON Schema:
 * what lm-evaluation-harness and the Kubernetes Gateway API Inference
 * Extension send. A prompt is text (no chat template) or token ids, one or a
 * list of them; `logprobs` is the number of alternatives (0–20) in the legacy
 * `{tokens, token_logprobs, top_logprobs, text_offset}` shape.
 */
import { samplingProperties, usageSchema } from '../chat/schema.js'

const number = (minimum: number, maximum: number) => ({ type: 'number', minimum, maximum })
const tokenIds = { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0 } } as const

export const completionRequestSchema = {
  type: 'object',
  properties: {
    model: { type: 'string' },
    prompt: {
      anyOf: [
        { type: 'string' },
        { type: 'array', minItems: 1, items: { type: 'string' } },
        tokenIds,
        { type: 'array', minItems: 1, items: tokenIds },
      ],
    },
    suffix: { type: ['string', 'null'] },
    max_tokens: { type: ['integer', 'null'], minimum: 0 },
    temperature: number(0, 2),
    top_p: number(0, 1),
    n: { type: 'integer', minimum: 1, maximum: 128 },
    best_of: { type: 'integer', minimum: 1 },
    stream: { type: 'boolean' },
    stream_options: { type: 'object', properties: { include_usage: { type: 'boolean' } }, additionalProperties: false },
    logprobs: { type: ['integer', 'null'], minimum: 0, maximum: 20 },
    echo: { type: 'boolean' },
    ...samplingProperties,
    user: { type: 'string' },
  },
  required: ['model', 'prompt'],
  additionalProperties: false,
} as const

/** A request body that passed `completionRequestSchema`. */
export interface CompletionRequestBody {
  model: string
  prompt: string | string[] | number[] | number[][]
  suffix?: string | null
  max_tokens?: number | null
  temperature?: number
  top_p?: number
  n?: number
  best_of?: number
  stream?: boolean
  stream_options?: { include_usage?: boolean }
  logprobs?: number | null
  echo?: boolean
  stop?: string | string[] | null
  seed?: number
  presence_penalty?: number
  frequency_penalty?: number
  logit_bias?: Record<string, number>
  user?: string
  top_k?: number
  min_p?: number
  repetition_penalty?: number
}

const nullable = (schema: object) => ({ anyOf: [schema, { type: 'null' }] })

/** The legacy logprobs of one choice. */
const legacyLogprobs = nullable({
  type: 'object',
  properties: {
    tokens: { type: 'array', items: { type: 'string' } },
    token_logprobs: { type: 'array', items: { type: ['number', 'null'] } },
    top_logprobs: { type: 'array', items: nullable({ type: 'object', additionalProperties: { type: 'number' } }) },
    text_offset: { type: 'array', items: { type: 'integer' } },
  },
  required: ['tokens', 'token_logprobs', 'top_logprobs', 'text_offset'],
})

const choice = {
  type: 'object',
  properties: {
    index: { type: 'integer' },
    text: { type: 'string' },
    logprobs: legacyLogprobs,
    finish_reason: nullable({ enum: ['stop', 'length'] }),
  },
  required: ['index', 'text', 'logprobs', 'finish_reason'],
} as const

const envelope = {
  id: { type: 'string' },
  object: { const: 'text_completion' },
  created: { type: 'integer' },
  model: { type: 'string' },
  system_fingerprint: { type: 'string' },
  choices: { type: 'array', items: choice },
} as const

export const completionSchema = {
  type: 'object',
  properties: { ...envelope, usage: usageSchema },
  required: ['id', 'object', 'created', 'model', 'system_fingerprint', 'choices', 'usage'],
} as const

/** One `data:` event of a stream; documented, not used to serialise. */
export const completionChunkSchema = {
  type: 'object',
  properties: { ...envelope, usage: nullable(usageSchema) },
  required: ['id', 'object', 'created', 'model', 'system_fingerprint', 'choices'],
} as const
