/**
 * Probes and the draining gate: readiness follows the engine and shutdown; new
 * requests get 503 while draining. The HTTP side only, on a scripted engine
 * (startup.test.ts drains the real one).
 */
import t from 'tap'
import { ScriptedEngineClient } from '../helpers/scripted-engine-client.js'
import { MODEL, hello, serve } from '../routes/serve.js'

t.test('the probes answer with the engine up, and readiness follows it', async (t) => {
  const engine = new ScriptedEngineClient({ executionProvider: 'cpu' })
  const { base } = await serve(t, engine)
  const get = async (path: string) => {
    const res = await fetch(`${base}${path}`)
    return [res.status, await res.json()]
  }
  t.same(await get('/health/live'), [200, { status: 'ok' }])
  t.same(await get('/health/ready'), [200, { status: 'ready', execution_provider: 'cpu' }])
  t.same(await get('/health/startup'), [200, { status: 'started' }])
  engine.up = false
  t.same(await get('/health/ready'), [503, { status: 'not_ready' }], 'an engine loop that is down')
  t.same(await get('/health/live'), [200, { status: 'ok' }])
  t.same(await get('/health/startup'), [200, { status: 'started' }], 'a pod that started stays started')
})

t.test('draining: readiness false at once, new requests 503 with Retry-After, running requests finish', async (t) => {
  const engine = new ScriptedEngineClient()
  engine.onSubmit = () => {} // held: the stream runs until the test ends it
  const { app, base, post } = await serve(t, engine)
  const running = await post(hello({ stream: true, max_tokens: 300 }))
  t.equal(running.status, 200)
  const call = await engine.call(0)
  app.startDraining()
  const ready = await fetch(`${base}/health/ready`)
  t.equal(ready.status, 503)
  t.same(await ready.json(), { status: 'not_ready' })
  t.equal((await fetch(`${base}/health/live`)).status, 200, 'still alive')
  t.same(
    await (await fetch(`${base}/health/startup`)).json(),
    { status: 'started' },
    'a pod that started stays started',
  )
  const refused = await post(hello())
  t.equal(refused.status, 503)
  t.equal(refused.headers.get('retry-after'), '1')
  t.equal(refused.headers.get('connection'), 'close')
  t.same(await refused.json(), {
    error: {
      message: 'The server is shutting down; retry on another replica.',
      type: 'server_error',
      param: null,
      code: 'server_shutting_down',
    },
  })
  t.equal((await fetch(`${base}/v1/models`)).status, 503)
  t.equal(engine.calls.length, 1, 'the refused request never reached the engine')
  call.answer(['a', 'b', 'c'], { finish: 'length' })
  t.match(await running.text(), /"finish_reason":"length"[^\n]*\n\ndata: \[DONE\]\n\n$/)
})

t.test('an engine that is draining refuses new work with 503 even before the app knows', async (t) => {
  const engine = new ScriptedEngineClient()
  const { base, post } = await serve(t, engine)
  await engine.drain(1000)
  const res = await post(hello({ model: MODEL }))
  t.equal(res.status, 503)
  t.equal(res.headers.get('retry-after'), '1')
  t.same(await res.json(), {
    error: {
      message: 'The server is shutting down; retry on another instance.',
      type: 'server_error',
      param: null,
      code: 'server_shutting_down',
    },
  })
  t.equal((await fetch(`${base}/health/ready`)).status, 503)
})
