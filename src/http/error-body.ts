/**
 * A KelixError as the API sends it: `{"error": {"message", "type", "param", "code"}}`
 * with the catalog's status, and `Retry-After` on 429 and 503. The one place
 * where error codes meet the wire (src/errors/catalog.ts states them).
 */
import type { KelixError } from '../errors/kelix-error.js'

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string }
}

export function errorBody(err: KelixError): OpenAIErrorBody {
  const spec = err.spec
  return {
    error: {
      message: err.message,
      type: spec.type,
      param: err.fields.param ?? null,
      code: spec.openaiCode ?? err.code,
    },
  }
}

export function errorStatus(err: KelixError): number {
  return err.spec.status
}

/** Seconds for `Retry-After`: what the thrower said, else 1 for a 429 or 503; undefined for other statuses. */
export function retryAfterSeconds(err: KelixError): number | undefined {
  const status = err.spec.status
  return status === 429 || status === 503 ? (err.fields.retryAfterSeconds ?? 1) : undefined
}
