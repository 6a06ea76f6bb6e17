/**
 * `GET /openapi.json`: an OpenAPI 3.1 document assembled from the schemas the
 * routes register (collected by an `onRoute` hook), so the document and the
 * validation can never disagree. Install before the routes.
 */
import type { FastifyInstance, RouteOptions } from 'fastify'

interface RouteSchema {
  summary?: string
  description?: string
  tags?: string[]
  body?: object
  params?: { properties?: Record<string, object> }
  response?: Record<string, object>
}

/** Route `config` keys the document reads. */
export interface OpenApiRouteConfig {
  /** Also accepts `multipart/form-data` with the JSON body in a field named `request`. */
  multipart?: boolean
  /** Answers `text/event-stream` with events of this schema when the body asks for `stream`. */
  eventStream?: object
}

declare module 'fastify' {
  interface FastifySchema {
    summary?: string
    description?: string
    tags?: string[]
  }
  interface FastifyContextConfig {
    /** Also accepts `multipart/form-data` with the JSON body in a field named `request`. */
    multipart?: boolean
    /** Answers `text/event-stream` with events of this schema when the body asks for `stream`. */
    eventStream?: object
  }
}

export interface OpenApiInfo {
  title: string
  version: string
}

const BEARER = { type: 'http', scheme: 'bearer' }

function responseContent(schema: object): Record<string, { schema: object }> {
  const byType = (schema as { content?: Record<string, { schema: object }> }).content
  return byType ?? { 'application/json': { schema } }
}

function operation(route: RouteOptions, secured: boolean): object {
  const schema = (route.schema ?? {}) as RouteSchema
  const config = (route.config ?? {}) as OpenApiRouteConfig
  const op: Record<string, unknown> = {}
  if (schema.summary !== undefined) op.summary = schema.summary
  if (schema.description !== undefined) op.description = schema.description
  if (schema.tags !== undefined) op.tags = schema.tags
  const params = schema.params?.properties
  if (params !== undefined)
    op.parameters = Object.entries(params).map(([name, s]) => ({ name, in: 'path', required: true, schema: s }))
  if (schema.body !== undefined) {
    const content: Record<string, object> = { 'application/json': { schema: schema.body } }
    if (config.multipart) {
      content['multipart/form-data'] = {
        schema: {
          type: 'object',
          properties: { request: { type: 'string', description: 'the JSON request body' } },
          required: ['request'],
          additionalProperties: {
            type: 'string',
            format: 'binary',
            description: 'an image, referenced as attachment://<field name> or appended to the last user message',
          },
        },
      }
    }
    op.requestBody = { required: true, content }
  }
  const responses: Record<string, object> = {}
  for (const [status, s] of Object.entries(schema.response ?? {})) {
    const content = responseContent(s)
    if (status === '200' && config.eventStream !== undefined)
      content['text/event-stream'] = { schema: config.eventStream }
    responses[status.toUpperCase()] = { description: status === '200' ? 'OK' : 'Error', content }
  }
  op.responses = Object.keys(responses).length > 0 ? responses : { 200: { description: 'OK' } }
  if (!secured) op.security = []
  return op
}

/**
 * Collects every route registered after this call; `isOpen(path)` says which
 * need no API key (when keys are configured).
 */
export function installOpenApi(
  app: FastifyInstance,
  info: OpenApiInfo,
  options: { authEnabled: boolean; isOpen: (path: string) => boolean },
): void {
  const paths: Record<string, Record<string, object>> = {}
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    if (route.url === '/openapi.json') return
    const path = route.url.replace(/:(\w+)/g, '{$1}')
    for (const method of methods) {
      if (method === 'HEAD') continue
      ;(paths[path] ??= {})[method.toLowerCase()] = operation(route, options.authEnabled && !options.isOpen(route.url))
    }
  })
  app.get('/openapi.json', { logLevel: 'warn' }, async () => ({
    openapi: '3.1.0',
    info,
    paths,
    ...(options.authEnabled ? { components: { securitySchemes: { bearer: BEARER } }, security: [{ bearer: [] }] } : {}),
  }))
}
