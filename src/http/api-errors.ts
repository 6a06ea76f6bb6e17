/**
 * Every error the HTTP API returns, by stable code, in the OpenAI shape
 * `{"error": {"message", "type", "param", "code"}}`. Routes throw
 * `new ApiError(code, message, param)`; the error handler serialises it. Codes
 * double as metric labels. A client's mistake is always a 4xx: the official
 * SDKs retry 408, 409, 429 and 5xx.
 */
import { GENERATION_ERRORS, type GenerationError, type GenerationErrorCode } from '../batching/client-types.js'

export const API_ERRORS = {
  /** Malformed body, or a value no better code describes. */
  invalid_request_error: { status: 400, type: 'invalid_request_error' },
  /** A field has the wrong JSON type. */
  invalid_type: { status: 400, type: 'invalid_request_error' },
  /** A field is out of range or not one of the allowed values. */
  invalid_value: { status: 400, type: 'invalid_request_error' },
  missing_required_parameter: { status: 400, type: 'invalid_request_error' },
  unknown_parameter: { status: 400, type: 'invalid_request_error' },
  context_length_exceeded: { status: 400, type: 'invalid_request_error' },
  /** Bytes that are not a usable image: bad data URL, wrong media type, undecodable. */
  invalid_image: { status: 400, type: 'invalid_request_error' },
  image_too_large: { status: 400, type: 'invalid_request_error' },
  too_many_images: { status: 400, type: 'invalid_request_error' },
  /** A remote image URL that is not allowed or could not be fetched. */
  invalid_image_url: { status: 400, type: 'invalid_request_error' },
  invalid_prompt: { status: 400, type: 'invalid_request_error' },
  invalid_api_key: { status: 401, type: 'invalid_request_error' },
  model_not_found: { status: 404, type: 'invalid_request_error' },
  /** The served model's export cannot do what the endpoint asks (a chat-only export asked for images). */
  model_capability_missing: { status: 400, type: 'invalid_request_error' },
  not_found: { status: 404, type: 'invalid_request_error' },
  timeout: { status: 408, type: 'timeout_error' },
  request_too_large: { status: 413, type: 'invalid_request_error' },
  unsupported_media_type: { status: 415, type: 'invalid_request_error' },
  rate_limit_exceeded: { status: 429, type: 'rate_limit_error' },
  server_error: { status: 500, type: 'server_error' },
  server_shutting_down: { status: 503, type: 'server_error' },
  engine_unavailable: { status: 503, type: 'server_error' },
} as const

export type ApiErrorCode = keyof typeof API_ERRORS

export interface ApiErrorBody {
  error: { message: string; type: string; param: string | null; code: string }
}

export class ApiError extends Error {
  override readonly name = 'ApiError'
  readonly status: number
  readonly type: string

  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly param: string | null = null,
    /** Sent as `Retry-After` (429 and 503). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message)
    this.status = API_ERRORS[code].status
    this.type = API_ERRORS[code].type
  }

  toBody(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } }
  }
}

/** Which API error each engine-side code becomes; statuses agree with GENERATION_ERRORS. */
const FROM_GENERATION: Record<GenerationErrorCode, { code: ApiErrorCode; param: string | null }> = {
  queue_full: { code: 'rate_limit_exceeded', param: null },
  queue_tokens_full: { code: 'rate_limit_exceeded', param: null },
  draining: { code: 'server_shutting_down', param: null },
  engine_unavailable: { code: 'engine_unavailable', param: null },
  timeout: { code: 'timeout', param: null },
  context_length_exceeded: { code: 'context_length_exceeded', param: 'messages' },
  invalid_image: { code: 'invalid_image', param: 'messages' },
  image_too_large: { code: 'image_too_large', param: 'messages' },
  invalid_prompt: { code: 'invalid_prompt', param: 'messages' },
  invalid_sampling: { code: 'invalid_value', param: null },
  invalid_response_format: { code: 'invalid_value', param: 'response_format' },
  image_generation_unsupported: { code: 'model_capability_missing', param: 'model' },
  engine_failed: { code: 'server_error', param: null },
}

/** Request fields an `invalid_sampling` message may start with (the engine names the OpenAI field). */
const SAMPLING_FIELDS = ['temperature', 'top_p', 'top_k', 'min_p', 'presence_penalty', 'frequency_penalty', 'repetition_penalty', 'logit_bias', 'top_logprobs', 'seed']

/** The API error for an engine-side failure, with a `param` when one can be named. */
export function fromGenerationError(err: Pick<GenerationError, 'code' | 'message' | 'retryAfterSeconds'>): ApiError {
  const { code, param } = FROM_GENERATION[err.code]
  const message = err.message === '' ? GENERATION_ERRORS[err.code].message : err.message
  const field = code === 'invalid_value' ? SAMPLING_FIELDS.find((f) => message.startsWith(f)) : undefined
  const status = API_ERRORS[code].status
  const retryAfter = status === 429 || status === 503 ? (err.retryAfterSeconds ?? 1) : undefined
  return new ApiError(code, message, field ?? param, retryAfter)
}
