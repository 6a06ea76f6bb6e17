/**
 * Request validation: one strict Ajv (no type coercion, no silent removal of
 * unknown fields, defaults left to the route) and the translation of its first
 * error into an OpenAI-style 400 that names the offending `param` in the
 * SDKs' notation: `messages[0].content[1].image_url.url`.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import type { FastifySchemaCompiler } from 'fastify'
import type { ErrorCode } from '../errors/catalog.js'
import { KelixError } from '../errors/kelix-error.js'

const ajv = new Ajv({
  allErrors: false,
  coerceTypes: false,
  useDefaults: false,
  removeAdditional: false,
  discriminator: true,
  verbose: true,
  allowUnionTypes: true,
  strict: true,
})

/** Compiles a schema with the strict instance; cached by schema object. */
export function compileSchema(schema: object): ValidateFunction {
  return ajv.compile(schema)
}

/** For a route's `validatorCompiler`: the same strict instance fastify then calls. */
export const strictValidatorCompiler: FastifySchemaCompiler<object> = ({ schema }) => compileSchema(schema)

/** `/messages/0/content` → `messages[0].content`. */
export function paramFromPointer(pointer: string): string {
  if (pointer === '') return ''
  const segments = pointer
    .slice(1)
    .split('/')
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'))
  return segments.reduce((param, segment) => childParam(param, segment), '')
}

function childParam(parent: string, segment: string): string {
  if (/^\d+$/.test(segment)) return `${parent}[${segment}]`
  return parent === '' ? segment : `${parent}.${segment}`
}

/** The JSON value as a message shows it: text is never echoed back. */
function describe(data: unknown): string {
  if (typeof data === 'string') return 'a string'
  if (Array.isArray(data)) return 'an array'
  if (data !== null && typeof data === 'object') return 'an object'
  return JSON.stringify(data)
}

const article = (type: string) =>
  type === 'array' || type === 'object' || type === 'integer' ? `an ${type}` : `a ${type}`

const depth = (e: ErrorObject) =>
  e.instancePath.split('/').length + (e.keyword === 'required' || e.keyword === 'additionalProperties' ? 1 : 0)
const composite = (e: ErrorObject) => e.keyword === 'anyOf' || e.keyword === 'oneOf' || e.keyword === 'if'

/**
 * The error a client most needs: the deepest one (the branch that matched
 * furthest), with every `type` alternative at that place merged.
 */
export function errorFromValidation(errors: readonly ErrorObject[]): KelixError {
  const concrete = errors.filter((e) => !composite(e))
  const candidates = concrete.length > 0 ? concrete : errors
  const deepest = Math.max(...candidates.map(depth))
  const atDeepest = candidates.filter((e) => depth(e) === deepest)
  // A non-type error here comes from the alternative whose type matched: the one the client meant.
  const first = atDeepest.find((e) => e.keyword !== 'type') ?? atDeepest[0]
  if (first === undefined) return new KelixError('invalid_request_error', 'The request body is invalid.')
  if (first.instancePath === '' && first.keyword === 'type')
    return new KelixError('invalid_type', `The request body must be a JSON object, but got ${describe(first.data)}.`)
  if (first.keyword === 'type') {
    const types = [
      ...new Set(
        atDeepest
          .filter((e) => e.keyword === 'type' && e.instancePath === first.instancePath)
          .flatMap((e) => String(e.params.type).split(',')),
      ),
    ]
    const param = paramFromPointer(first.instancePath)
    return new KelixError(
      'invalid_type',
      `Invalid type for '${param}': expected ${types.map(article).join(' or ')}, but got ${describe(first.data)} instead.`,
      { param },
    )
  }
  return fromSingleError(first)
}

function fromSingleError(e: ErrorObject): KelixError {
  const param = paramFromPointer(e.instancePath)
  const make = (code: ErrorCode, message: string, at = param) =>
    new KelixError(code, message, at === '' ? {} : { param: at })
  const p = e.params as Record<string, unknown>
  switch (e.keyword) {
    case 'required': {
      const missing = childParam(param, String(p.missingProperty))
      return make('missing_required_parameter', `Missing required parameter: '${missing}'.`, missing)
    }
    case 'additionalProperties': {
      const unknown = childParam(param, String(p.additionalProperty))
      return make('unknown_parameter', `Unrecognized request argument supplied: '${unknown}'.`, unknown)
    }
    case 'enum':
      return make(
        'invalid_value',
        `Invalid value for '${param}': expected one of ${listValues(p.allowedValues as unknown[])}, but got ${JSON.stringify(e.data)} instead.`,
      )
    case 'const':
      return make(
        'invalid_value',
        `Invalid value for '${param}': expected ${JSON.stringify(p.allowedValue)}, but got ${JSON.stringify(e.data)} instead.`,
      )
    case 'discriminator':
      return fromDiscriminator(e, param)
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return make(
        'invalid_value',
        `Invalid '${param}': expected a value ${String(p.comparison)} ${String(p.limit)}, but got ${describe(e.data)} instead.`,
      )
    case 'minItems':
      return make(
        'invalid_value',
        `Invalid '${param}': expected an array with at least ${String(p.limit)} item${p.limit === 1 ? '' : 's'}, but got ${(e.data as unknown[]).length}.`,
      )
    case 'maxItems':
      return make(
        'invalid_value',
        `Invalid '${param}': expected an array with at most ${String(p.limit)} items, but got ${(e.data as unknown[]).length}.`,
      )
    case 'minLength':
      return make(
        'invalid_value',
        `Invalid '${param}': expected a string of at least ${String(p.limit)} character${p.limit === 1 ? '' : 's'}.`,
      )
    case 'maxLength':
      return make('invalid_value', `Invalid '${param}': expected a string of at most ${String(p.limit)} characters.`)
    case 'propertyNames':
      return make('invalid_value', `Invalid key '${String(p.propertyName)}' in '${param}'${schemaDescription(e)}.`)
    case 'pattern':
      return make('invalid_value', `Invalid value for '${param}'${schemaDescription(e)}.`)
    default:
      return make('invalid_value', `Invalid value for '${param}': ${e.message ?? 'not allowed'}.`)
  }
}

function fromDiscriminator(e: ErrorObject, param: string): KelixError {
  const p = e.params as { error: 'tag' | 'mapping'; tag: string; tagValue: unknown }
  const tagParam = childParam(param, p.tag)
  if (p.error === 'tag' && p.tagValue === undefined)
    return new KelixError('missing_required_parameter', `Missing required parameter: '${tagParam}'.`, {
      param: tagParam,
    })
  if (p.error === 'tag')
    return new KelixError(
      'invalid_type',
      `Invalid type for '${tagParam}': expected a string, but got ${describe(p.tagValue)} instead.`,
      { param: tagParam },
    )
  const branches =
    (e.parentSchema as { oneOf?: Array<{ properties?: Record<string, { const?: unknown; enum?: unknown[] }> }> })
      .oneOf ?? []
  const allowed = branches.flatMap((b) => {
    const tag = b.properties?.[p.tag]
    return tag?.enum ?? (tag?.const === undefined ? [] : [tag.const])
  })
  return new KelixError(
    'invalid_value',
    `Invalid value for '${tagParam}': expected one of ${listValues(allowed)}, but got ${JSON.stringify(p.tagValue)} instead.`,
    { param: tagParam },
  )
}

function listValues(values: readonly unknown[]): string {
  return values.map((v) => JSON.stringify(v)).join(', ')
}

/** `: <description>` from the failing keyword's schema, for pattern-like errors. */
function schemaDescription(e: ErrorObject): string {
  const own = (e.parentSchema as { description?: string } | undefined)?.description
  return own === undefined ? '' : `: ${own}`
}
