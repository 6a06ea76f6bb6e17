/**
 * Every error the engine raises, by stable code. Callers and tests match on
 * `code`; the HTTP layer maps codes to statuses in one place.
 */
export const ENGINE_ERRORS = {
  MODEL_DIR_MISSING: 'the model directory does not exist',
  MODEL_FILE_MISSING: 'a file the model format requires is missing',
  MODEL_CONFIG_INVALID: 'config.json does not follow the model format',
  MODEL_GRAPH_INVALID: 'an ONNX graph could not be loaded',
  MODEL_GRAPH_MISMATCH: 'an ONNX graph disagrees with the model format or config.json',
  MODEL_TOKENIZER_MISMATCH: 'the tokenizer disagrees with config.json',
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
