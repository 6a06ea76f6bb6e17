/** Bearer API keys: 401 in the OpenAI shape, checked before the body is read; probes open unless configured. */
import { createHash } from 'node:crypto'
import t from 'tap'
import { keyMatches } from '../../src/http/auth.js'
import { ScriptedEngineClient } from '../helpers/scripted-engine-client.js'
import { hello, serve } from '../routes/serve.js'

// Auth is decided before any engine call: a scripted engine stands in for the model.
const engine = new ScriptedEngineClient()
const MISSING = {
  error: {
    message:
      "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
    type: 'invalid_request_error',
    param: null,
    code: 'invalid_api_key',
  },
}
const WRONG = {
  error: {
    message: 'Incorrect API key provided.',
    type: 'invalid_request_error',
    param: null,
    code: 'invalid_api_key',
  },
}

t.test('keys match by digest, any of several', async (t) => {
  const keys = ['sk-a', 'sk-b'].map((k) => createHash('sha256').update(k).digest())
  t.ok(keyMatches('sk-a', keys))
  t.ok(keyMatches('sk-b', keys))
  t.notOk(keyMatches('sk-', keys))
  t.notOk(keyMatches('sk-a ', keys))
  t.notOk(keyMatches('', []))
})

t.test('without a key the API answers 401, with a wrong key 401, with a right key 200', async (t) => {
  const { base, openai } = await serve(t, engine, { config: { apiKeys: ['sk-one', 'sk-two'] } })
  const none = await fetch(`${base}/v1/models`)
  t.equal(none.status, 401)
  t.equal(none.headers.get('www-authenticate'), 'Bearer')
  t.same(await none.json(), MISSING)
  const wrong = await fetch(`${base}/v1/models`, { headers: { authorization: 'Bearer sk-three' } })
  t.equal(wrong.status, 401)
  t.same(await wrong.json(), WRONG)
  const basic = await fetch(`${base}/v1/models`, { headers: { authorization: 'Basic c2stb25lOg==' } })
  t.same(await basic.json(), MISSING)
  for (const header of ['Bearer sk-one', 'bearer sk-two', 'Bearer  sk-one ']) {
    const ok = await fetch(`${base}/v1/models`, { headers: { authorization: header } })
    t.equal(ok.status, 200, header)
  }
  const sdkWrong = await openai.models.list().catch((err: unknown) => err)
  t.match(sdkWrong, { status: 401, code: 'invalid_api_key' })
})

t.test('an unauthenticated request is refused before its body is read', async (t) => {
  const untouched = new ScriptedEngineClient()
  const { post } = await serve(t, untouched, { config: { apiKeys: ['sk-one'], maxBodyBytes: 1024 } })
  const res = await post(hello({ user: 'x'.repeat(10_000) }))
  t.equal(res.status, 401)
  t.same(await res.json(), MISSING)
  t.same([untouched.reservations, untouched.calls], [[], []], 'the engine never saw it')
})

t.test('probes and the OpenAPI document are open by default; KELIX_AUTH_HEALTH closes the probes', async (t) => {
  const open = await serve(t, engine, { config: { apiKeys: ['sk-one'] } })
  for (const path of ['/health/live', '/health/ready', '/health/startup', '/openapi.json'])
    t.equal((await fetch(`${open.base}${path}`)).status, 200, path)
  const closed = await serve(t, engine, { config: { apiKeys: ['sk-one'], authHealth: true } })
  const probe = await fetch(`${closed.base}/health/ready`)
  t.equal(probe.status, 401)
  t.same(await probe.json(), MISSING)
  t.equal((await fetch(`${closed.base}/health/ready`, { headers: { authorization: 'Bearer sk-one' } })).status, 200)
})

t.test('unknown paths ask for a key first, then answer 404', async (t) => {
  const { base } = await serve(t, engine, { config: { apiKeys: ['sk-one'] } })
  t.equal((await fetch(`${base}/v1/embeddings`)).status, 401)
  const missing = await fetch(`${base}/v1/embeddings`, { headers: { authorization: 'Bearer sk-one' } })
  t.equal(missing.status, 404)
  t.same(await missing.json(), {
    error: {
      message: 'No route for GET /v1/embeddings',
      type: 'invalid_request_error',
      param: null,
      code: 'not_found',
    },
  })
})
