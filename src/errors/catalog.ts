/**
 * Every error Kelix Serve raises, by stable code, stated once: the HTTP status
 * and OpenAI error type it is sent with, and what it means. Every layer throws
 * `new KelixError(code, detail, fields)` (./kelix-error.ts); the HTTP kit turns
 * any of them into the OpenAI body (src/http/error-body.ts), the CLI prints
 * `CODE: message`.
 *
 * Codes a client can see are OpenAI's lower-case ones, and double as metric
 * labels; codes only an operator sees (start-up, the converter, internal
 * contracts broken) are upper case. A client's mistake is always a 4xx: the
 * official SDKs retry 408, 409, 429 and 5xx.
 */

/** OpenAI's error types. */
export type ErrorType = 'invalid_request_error' | 'rate_limit_error' | 'timeout_error' | 'server_error'

export interface ErrorSpec {
  status: number
  type: ErrorType
  /** What the code means; the message when the thrower gives no detail. */
  summary: string
  /** The `code` sent to clients when OpenAI names this condition differently (every 429 is `rate_limit_exceeded`). */
  openaiCode?: string
  /** The request's prompt field is at fault (`messages`, `prompt` or `input`: the route knows which) unless a `param` is given. */
  aboutPrompt?: true
}

const request = (summary: string, extra: Partial<ErrorSpec> = {}): ErrorSpec => ({
  status: 400,
  type: 'invalid_request_error',
  summary,
  ...extra,
})
const operator = (summary: string): ErrorSpec => ({ status: 500, type: 'server_error', summary })

export const ERRORS = {
  // ── What a client sent ──────────────────────────────────────────────────
  /** Malformed body, or a value no better code describes. */
  invalid_request_error: request('the request is malformed'),
  /** A field has the wrong JSON type. */
  invalid_type: request('a field has the wrong type'),
  /** A field is out of range or not one of the allowed values (sampling parameters, `n`, a response format that cannot be enforced). */
  invalid_value: request('a field has a value this server does not accept'),
  missing_required_parameter: request('a required field is missing'),
  unknown_parameter: request('the request has a field this server does not know'),
  context_length_exceeded: request('the prompt and the requested tokens do not fit the context', { aboutPrompt: true }),
  /** Bytes that are not a usable image: bad data URL, wrong media type, empty, undecodable. */
  invalid_image: request('an image could not be used', { aboutPrompt: true }),
  image_too_large: request('an image has more pixels or bytes than the limit allows', { aboutPrompt: true }),
  too_many_images: request('the request has more images than this server accepts'),
  /** A remote image URL that is not allowed or could not be fetched. */
  invalid_image_url: request('a remote image URL is not allowed or could not be fetched'),
  /** The chat template failed, the prompt and its images disagree, or prompt ids are outside the text vocabulary. */
  invalid_prompt: request('the prompt could not be built', { aboutPrompt: true }),
  invalid_api_key: { status: 401, type: 'invalid_request_error', summary: 'the API key is missing or wrong' },
  model_not_found: { status: 404, type: 'invalid_request_error', summary: 'the model is not served here' },
  /** The served model's export cannot do what the endpoint asks (a chat-only export asked for images). */
  model_capability_missing: request('the served model cannot do this'),
  not_found: { status: 404, type: 'invalid_request_error', summary: 'no such route' },
  request_too_large: {
    status: 413,
    type: 'invalid_request_error',
    summary: 'the request body is larger than this server accepts',
  },
  unsupported_media_type: {
    status: 415,
    type: 'invalid_request_error',
    summary: 'the Content-Type is not JSON or multipart/form-data',
  },

  // ── Capacity and lifecycle: retry later ─────────────────────────────────
  queue_full: {
    status: 429,
    type: 'rate_limit_error',
    summary: 'the waiting queue is full',
    openaiCode: 'rate_limit_exceeded',
  },
  queue_tokens_full: {
    status: 429,
    type: 'rate_limit_error',
    summary: 'the waiting queue holds too many tokens',
    openaiCode: 'rate_limit_exceeded',
  },
  timeout: { status: 408, type: 'timeout_error', summary: 'the request ran past its time limit' },
  draining: {
    status: 503,
    type: 'server_error',
    summary: 'the server is shutting down',
    openaiCode: 'server_shutting_down',
  },
  engine_unavailable: { status: 503, type: 'server_error', summary: 'the engine is not running' },

  // ── The server's own failure ────────────────────────────────────────────
  /** The engine failed while generating (a step threw, the worker died). */
  engine_failed: {
    status: 500,
    type: 'server_error',
    summary: 'the engine failed while generating',
    openaiCode: 'server_error',
  },
  /** Anything else: the cause is logged, never sent. */
  server_error: { status: 500, type: 'server_error', summary: 'the server had an error while processing your request' },

  // ── Serving a model directory (start-up) ────────────────────────────────
  MODEL_DIR_MISSING: operator('the model directory does not exist'),
  MODEL_FILE_MISSING: operator('a file the model format requires is missing'),
  MODEL_CONFIG_INVALID: operator('config.json does not follow the model format'),
  MODEL_GRAPH_INVALID: operator('an ONNX graph could not be loaded'),
  MODEL_GRAPH_MISMATCH: operator('an ONNX graph disagrees with the model format or config.json'),
  MODEL_TOKENIZER_MISMATCH: operator('the tokenizer disagrees with config.json'),
  EXECUTION_PROVIDER_UNAVAILABLE: operator('none of the execution providers asked for could be loaded'),
  ENGINE_START_FAILED: operator('the engine could not start'),

  // ── The checkpoint converter ────────────────────────────────────────────
  CHECKPOINT_DIR_MISSING: operator('the checkpoint directory does not exist'),
  CHECKPOINT_FILE_MISSING: operator('a file the checkpoint needs is missing'),
  CHECKPOINT_INDEX_INVALID: operator(
    'model.safetensors.index.json (or the set of shards) does not describe the shards',
  ),
  CHECKPOINT_SHARD_INVALID: operator('a safetensors shard is truncated, corrupt or lies about its sizes'),
  CHECKPOINT_DTYPE_UNSUPPORTED: operator('a tensor has a dtype the converter does not read (only BF16, F16, F32)'),
  CHECKPOINT_KEY_MISSING: operator('a tensor the model needs is not in the checkpoint'),
  CHECKPOINT_SHAPE_MISMATCH: operator('a tensor does not have the shape the model config requires'),
  CHECKPOINT_CONFIG_INVALID: operator("the checkpoint's config.json does not describe a model the converter supports"),
  CHECKPOINT_TOKENIZER_MISMATCH: operator("the checkpoint's tokenizer files disagree with its config.json"),
  CONVERT_OPTION_INVALID: operator('a converter option is out of range or malformed'),
  CONVERT_OUTPUT_EXISTS: operator('the output directory exists and is not empty'),

  // ── Internal contracts (a caller broke one: never a condition to retry) ──
  SCHEDULER_CONFIG_INVALID: operator('a scheduler or admission option is out of range'),
  SCHEDULER_REQUEST_INVALID: operator('a request has lengths the scheduler cannot serve'),
  SCHEDULER_DUPLICATE_ID: operator('a sequence with this id is already known'),
  KV_OVER_CAPACITY: operator('a KV allocation would exceed the capacity'),
  SCHEDULER_STEP_IN_FLIGHT: operator('schedule() was called before the previous step was updated'),
  SCHEDULER_UPDATE_MISMATCH: operator('the step results do not match the scheduled step'),
} as const satisfies Record<string, ErrorSpec>

export type ErrorCode = keyof typeof ERRORS
