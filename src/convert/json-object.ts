/** A parsed JSON value that is an object (not null, not an array): what every file the converter reads must hold. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** `text` parsed as a JSON object; otherwise the error `invalid` makes of what is wrong (each file has its own code). */
export function parseJsonObject(text: string, invalid: (detail: string) => Error): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw invalid(`not valid JSON (${(err as Error).message})`)
  }
  if (!isJsonObject(value)) throw invalid('not a JSON object')
  return value
}
