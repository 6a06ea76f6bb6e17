/** A parsed JSON value that is an object (not null, not an array): what every file the converter reads must hold. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
