/** The refusal every endpoint gives for a count over this server's limit (`n`, `max_tokens`). */
import { KelixError } from '../errors/kelix-error.js'

export function checkAtMost(param: string, value: number, limit: number): void {
  if (value > limit)
    throw new KelixError(
      'invalid_value',
      `Invalid '${param}': expected a value <= ${limit} on this server, but got ${value} instead.`,
      { param, limit },
    )
}
