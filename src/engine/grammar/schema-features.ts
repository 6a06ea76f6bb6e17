/**
 * JSON Schema features XGrammar accepts but does not enforce (measured on
 * @mlc-ai/web-xgrammar 0.1.27: the grammar lets a violating value through).
 * A schema that uses one is refused with the keyword and where it is, so an
 * answer is never "constrained" to something its schema rejects:
 *
 *   multipleOf, uniqueItems, contains/minContains/maxContains, not
 *   minimum/maximum/exclusive* on a `number` (only the integer part is
 *     bounded: 1.5 passes `maximum: 1`); on an `integer` they are enforced
 *   a `format` outside the ones enforced (email, date, time, date-time,
 *     duration, uuid, ipv4, ipv6, hostname, uri, uri-reference, uri-template,
 *     json-pointer, relative-json-pointer)
 *   minProperties (XGrammar aborts on it)
 */

const UNENFORCED = [
  'multipleOf',
  'uniqueItems',
  'contains',
  'minContains',
  'maxContains',
  'not',
  'minProperties',
] as const
const NUMBER_BOUNDS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'] as const
const ENFORCED_FORMATS = new Set([
  'email',
  'date',
  'time',
  'date-time',
  'duration',
  'uuid',
  'ipv4',
  'ipv6',
  'hostname',
  'uri',
  'uri-reference',
  'uri-template',
  'json-pointer',
  'relative-json-pointer',
])

/** Keywords whose value is one subschema, a list of them, or a map of them. */
const ONE = [
  'items',
  'additionalProperties',
  'unevaluatedProperties',
  'unevaluatedItems',
  'propertyNames',
  'if',
  'then',
  'else',
  'additionalItems',
] as const
const LIST = ['allOf', 'anyOf', 'oneOf', 'prefixItems'] as const
const MAP = ['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas'] as const

type Schema = Record<string, unknown>
const isSchema = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v)
const escape = (key: string) => key.replaceAll('~', '~0').replaceAll('/', '~1')

/** The first unenforced feature of `schema`: what it is and where (a JSON pointer), or undefined. */
export function unenforcedFeature(schema: unknown, at = '#'): string | undefined {
  if (!isSchema(schema)) return undefined
  const found = UNENFORCED.find((k) => k in schema && !(k === 'uniqueItems' && schema[k] === false))
  if (found !== undefined) return `'${found}' (at ${at})`
  const types = Array.isArray(schema.type) ? schema.type : [schema.type]
  const bound = NUMBER_BOUNDS.find((k) => k in schema)
  if (bound !== undefined && types.includes('number'))
    return `'${bound}' on a number, which bounds only its integer part (at ${at}; use an integer, or leave the bound to the client)`
  if (typeof schema.format === 'string' && !ENFORCED_FORMATS.has(schema.format))
    return `the format '${schema.format}' (at ${at})`
  for (const k of ONE) {
    const inner = unenforcedFeature(schema[k], `${at}/${k}`)
    if (inner !== undefined) return inner
  }
  for (const k of LIST) {
    const list = schema[k]
    if (!Array.isArray(list)) continue
    for (const [i, item] of list.entries()) {
      const inner = unenforcedFeature(item, `${at}/${k}/${i}`)
      if (inner !== undefined) return inner
    }
  }
  for (const k of MAP) {
    const map = schema[k]
    if (!isSchema(map)) continue
    for (const [name, item] of Object.entries(map)) {
      const inner = unenforcedFeature(item, `${at}/${k}/${escape(name)}`)
      if (inner !== undefined) return inner
    }
  }
  return undefined
}
