/**
 * Every error the engine raises, by stable code. Callers and tests match on
 * `code`; the HTTP layer maps codes to statuses in one place.
 */
export const ENGINE_ERRORS = {
  MODEL_DIR_MISSING: 'the model directory does not exist',
  MODEL_FILE_MISSING: 'a file the model format requires is missing',
  MODEL_CONFIG_INVALID: 'config.json does not follow the model format',
  MODEL_GRAPH_INVALID: 'an ONNX graph could not be loaded',
  EXECUTION_PROVIDER_UNAVAILABLE: 'none of the execution providers asked for could be loaded',
  MODEL_GRAPH_MISMATCH: 'an ONNX graph disagrees with the model format or config.json',
  MODEL_TOKENIZER_MISMATCH: 'the tokenizer disagrees with config.json',
  IMAGE_EMPTY: 'the image has no bytes',
  IMAGE_UNSUPPORTED_FORMAT: 'the image is not PNG, JPEG, WEBP or GIF',
  IMAGE_DECODE_FAILED: 'the image could not be decoded (corrupt or truncated)',
  IMAGE_TOO_LARGE: 'the image has more pixels than the limit allows',
  PROMPT_TEMPLATE_FAILED: 'the chat template could not be rendered',
  PROMPT_IMAGE_MISMATCH: 'the rendered prompt and the images do not match',
  PROMPT_TOKENS_INVALID: 'a completions prompt is empty or has an id outside the text vocabulary',
  CONTEXT_LENGTH_EXCEEDED: 'the prompt and the requested tokens do not fit the context',
  INVALID_SAMPLING: 'a sampling parameter is out of range',
  IMAGE_GENERATION_UNSUPPORTED: 'the model has no image decoder (a chat-only export)',
  RESPONSE_FORMAT_INVALID: 'the response format cannot be enforced (a schema the grammar engine cannot compile)',
} as const

export type EngineErrorCode = keyof typeof ENGINE_ERRORS

export class EngineError extends Error {
  override readonly name = 'EngineError'

  constructor(
    readonly code: EngineErrorCode,
    detail: string,
    /** The model file the error is about, when there is one. */
    readonly file?: string,
  ) {
    super(file === undefined ? detail : `${file}: ${detail}`)
  }
}
