/**
 * Anything thrown while answering a request → the KelixError to send. The one
 * place where fastify's and multipart's errors meet the catalog; a client's
 * mistake is never a 5xx, and a cause we did not foresee is logged, never sent.
 */
import type { ErrorObject } from 'ajv'
import { KelixError } from '../errors/kelix-error.js'
import { errorFromValidation } from './validation.js'

interface FrameworkError {
  code?: string
  statusCode?: number
  message: string
  validation?: ErrorObject[]
}

const TOO_LARGE: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'The request body is larger than this server accepts',
  FST_REQ_FILE_TOO_LARGE: 'A file part is larger than this server accepts per image',
  FST_FILES_LIMIT: 'The request has more file parts than this server accepts per request',
  FST_PARTS_LIMIT: 'The request has more multipart parts than this server accepts',
  FST_FIELDS_LIMIT: "The request has more multipart fields than this server accepts (only 'request')",
}

export function toKelixError(err: unknown): KelixError {
  if (err instanceof KelixError) return err
  const e = err as FrameworkError
  if (e.validation !== undefined) return errorFromValidation(e.validation)
  const code = e.code ?? ''
  const tooLarge = TOO_LARGE[code]
  if (tooLarge !== undefined) return new KelixError('request_too_large', `${tooLarge}.`)
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return new KelixError(
      'unsupported_media_type',
      "Unsupported Content-Type: send application/json, or multipart/form-data with the JSON in a field named 'request'.",
    )
  }
  if (code === 'FST_ERR_CTP_EMPTY_JSON_BODY')
    return new KelixError('invalid_request_error', 'The request body is empty; expected a JSON object.')
  if (e instanceof SyntaxError || code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new KelixError('invalid_request_error', 'The request body is not valid JSON.')
  }
  const status = e.statusCode
  if (status !== undefined && status >= 400 && status < 500) return new KelixError('invalid_request_error', e.message)
  return new KelixError('server_error', 'The server had an error while processing your request.')
}
