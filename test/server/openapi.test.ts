/** GET /openapi.json: assembled from the schemas the routes validate and serialise with. */
import t from 'tap'
import { chatRequestSchema } from '../../src/routes/chat/schema.js'
import { ScriptedEngineClient } from '../helpers/scripted-engine-client.js'
import { serve } from '../routes/serve.js'

// The document is the routes' schemas: no model needed.
const engine = new ScriptedEngineClient()

interface Doc {
  openapi: string
  info: { title: string }
  paths: Record<
    string,
    Record<
      string,
      {
        summary?: string
        security?: unknown[]
        requestBody?: { content: Record<string, { schema: object }> }
        responses: Record<string, { content?: Record<string, { schema: object }> }>
        parameters?: unknown[]
      }
    >
  >
  security?: unknown[]
  components?: unknown
}

t.test('the document lists every route with its request and response schemas', async (t) => {
  const { base } = await serve(t, engine)
  const res = await fetch(`${base}/openapi.json`)
  t.equal(res.status, 200)
  const doc = (await res.json()) as Doc
  t.equal(doc.openapi, '3.1.0')
  t.equal(doc.info.title, 'Kelix Serve')
  t.same(Object.keys(doc.paths).sort(), [
    '/',
    '/detokenize',
    '/health/live',
    '/health/ready',
    '/health/startup',
    '/tokenize',
    '/v1/chat/completions',
    '/v1/completions',
    '/v1/images/generations',
    '/v1/models',
    '/v1/models/{id}',
    '/v1/responses',
  ])
  const chat = doc.paths['/v1/chat/completions']!.post!
  t.equal(chat.summary, 'Creates a model response for the given chat conversation')
  t.same(
    chat.requestBody!.content['application/json']!.schema,
    JSON.parse(JSON.stringify(chatRequestSchema)),
    'the very schema requests are validated with',
  )
  t.match(chat.requestBody!.content['multipart/form-data']!.schema, {
    properties: { request: { type: 'string' } },
    required: ['request'],
  })
  t.same(Object.keys(chat.responses).sort(), ['200', '4XX', '5XX'])
  t.same(Object.keys(chat.responses['200']!.content!).sort(), ['application/json', 'text/event-stream'])
  t.match(chat.responses['4XX']!.content!['application/json']!.schema, {
    properties: { error: { required: ['message', 'type', 'param', 'code'] } },
  })
  t.same(doc.paths['/v1/models/{id}']!.get!.parameters, [
    { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
  ])
  t.notOk('security' in doc, 'no security without API keys')
})

t.test('with API keys the document declares bearer auth, and the open probes opt out', async (t) => {
  const { base } = await serve(t, engine, { config: { apiKeys: ['sk-x'] } })
  const doc = (await (await fetch(`${base}/openapi.json`)).json()) as Doc
  t.same(doc.components, { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } })
  t.same(doc.security, [{ bearer: [] }])
  t.same(doc.paths['/health/ready']!.get!.security, [])
  t.notOk('security' in doc.paths['/v1/chat/completions']!.post!)
})
