/**
 * The one error class. Throw by code with structured fields; tests and
 * callers match on `code` and fields, never on message text.
 *
 *   throw new KelixError('invalid_value', `top_p must be in (0, 1], got ${p}`, { param: 'top_p' })
 *   throw new KelixError('CHECKPOINT_KEY_MISSING', `no tensor ${key}`, { file: 'model.safetensors' })
 */
import { ERRORS, type ErrorCode, type ErrorSpec } from './catalog.js'

export interface ErrorFields {
  /** The request field at fault, as the client named it (`top_p`, `messages[0].content[1]`). */
  param?: string
  /** The file the error is about (a model or checkpoint file); the message starts with it. */
  file?: string
  /** The limit the request went past (context positions, pixels, bytes, choices). */
  limit?: number
  /** Seconds a client should wait before retrying (429 and 503). */
  retryAfterSeconds?: number
}

export class KelixError extends Error {
  override readonly name = 'KelixError'

  constructor(
    readonly code: ErrorCode,
    /** One line saying what is wrong; the catalog's summary when omitted. */
    detail?: string,
    readonly fields: ErrorFields = {},
  ) {
    const text = detail === undefined || detail === '' ? ERRORS[code].summary : detail
    super(fields.file === undefined ? text : `${fields.file}: ${text}`)
  }

  get spec(): ErrorSpec {
    return ERRORS[this.code]
  }

  /** The same error with more fields (a route naming its own prompt field); the message is kept. */
  withFields(fields: ErrorFields): KelixError {
    return KelixError.fromWire({ code: this.code, message: this.message, fields: { ...this.fields, ...fields } })
  }

  /** Plain data for postMessage (structured clone drops an Error's own fields and class). */
  toWire(): WireError {
    return { code: this.code, message: this.message, fields: { ...this.fields } }
  }

  /** The error as sent; its message is whole already (a file prefix included), so the fields are set apart. */
  static fromWire(wire: WireError): KelixError {
    const err = new KelixError(wire.code, wire.message)
    Object.assign(err.fields, wire.fields)
    return err
  }
}

/** A KelixError as it crosses a thread boundary. */
export interface WireError {
  code: ErrorCode
  message: string
  fields: ErrorFields
}

/** Any thrown value as a KelixError: itself, or `fallback` carrying its message. */
export function asKelixError(err: unknown, fallback: ErrorCode): KelixError {
  if (err instanceof KelixError) return err
  return new KelixError(fallback, err instanceof Error ? err.message : String(err))
}
