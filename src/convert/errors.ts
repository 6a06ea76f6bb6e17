/**
 * Every error the checkpoint converter raises, by stable code. Callers and
 * tests match on `code`; messages are one line and name the file, key, dtype
 * or shapes involved.
 */
export const CONVERT_ERRORS = {
  CHECKPOINT_DIR_MISSING: 'the checkpoint directory does not exist',
  CHECKPOINT_FILE_MISSING: 'a file the checkpoint needs is missing',
  CHECKPOINT_INDEX_INVALID: 'model.safetensors.index.json (or the set of shards) does not describe the shards',
  CHECKPOINT_SHARD_INVALID: 'a safetensors shard is truncated, corrupt or lies about its sizes',
  CHECKPOINT_DTYPE_UNSUPPORTED: 'a tensor has a dtype the converter does not read (only BF16, F16, F32)',
  CHECKPOINT_KEY_MISSING: 'a tensor the model needs is not in the checkpoint',
  CHECKPOINT_SHAPE_MISMATCH: 'a tensor does not have the shape the model config requires',
  CHECKPOINT_CONFIG_INVALID: "the checkpoint's config.json does not describe a model the converter supports",
  CHECKPOINT_TOKENIZER_MISMATCH: "the checkpoint's tokenizer files disagree with its config.json",
  CONVERT_OPTION_INVALID: 'a converter option is out of range or malformed',
  CONVERT_OUTPUT_EXISTS: 'the output directory exists and is not empty',
} as const

export type ConvertErrorCode = keyof typeof CONVERT_ERRORS

/** A converter failure: `code` for callers and tests, a one-line message prefixed with `file` when there is one. */
export class ConvertError extends Error {
  override readonly name = 'ConvertError'

  constructor(
    readonly code: ConvertErrorCode,
    detail: string,
    /** The checkpoint file the error is about (a base name), when there is one. */
    readonly file?: string,
  ) {
    super(file === undefined ? detail : `${file}: ${detail}`)
  }
}
