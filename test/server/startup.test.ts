/**
 * The server on the embedded model, over real HTTP: probes and the model list,
 * then its engine going away: a drain refuses new work, and a stream still
 * running when the engine closes ends with an error event, then [DONE].
 */
import t from 'tap'
import { startEngine } from '../../src/batching/http-thread/engine-client.js'
import { TINY_CONFIG } from '../../src/builder/tiny.js'
import { buildApp } from '../../src/server/app.js'
import { testProviders } from '../helpers/test-providers.js'
import { tinyModelDir } from '../helpers/tiny-model.js'
import { readRest, readUntil, sseEvents } from '../routes/serve.js'

t.test('a started server is ready and lists the served model', async (t) => {
  const engine = await startEngine({
    modelDir: await tinyModelDir(),
    intraOpThreads: 1,
    executionProviders: testProviders(),
  })
  t.equal(engine.model.name, 'kelix-tiny')
  t.equal(engine.model.maxContext, 4096)
  const app = await buildApp({ logger: false, engine, model: { id: 'kelix-tiny', aliases: [], created: 1700000000 } })
  t.teardown(async () => {
    await app.close()
    await engine.close()
  })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })

  const live = await fetch(`${base}/health/live`)
  t.equal(live.status, 200)
  t.same(await live.json(), { status: 'ok' })
  const ready = await fetch(`${base}/health/ready`)
  t.equal(ready.status, 200)
  t.same(await ready.json(), { status: 'ready', execution_provider: testProviders()[0] })

  const models = await fetch(`${base}/v1/models`)
  t.equal(models.status, 200)
  t.same(await models.json(), {
    object: 'list',
    data: [{ id: 'kelix-tiny', object: 'model', created: 1700000000, owned_by: 'kelix-serve' }],
  })

  const missing = await fetch(`${base}/v1/models/gpt-4o`)
  t.equal(missing.status, 404)
  t.same(await missing.json(), {
    error: {
      message: "The model 'gpt-4o' does not exist. This server serves 'kelix-tiny'.",
      type: 'invalid_request_error',
      param: 'model',
      code: 'model_not_found',
    },
  })

  const post = (body: object) =>
    fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'kelix-tiny', messages: [{ role: 'user', content: 'Hello' }], ...body }),
    })
  // <|im_end|> banned: the stream runs until the engine goes away.
  const running = await post({
    max_tokens: 3000,
    logit_bias: { [TINY_CONFIG.special_tokens.im_end]: -100 },
    stream: true,
  })
  const { text, reader } = await readUntil(running, (body) => body.includes('"delta":{"content":"'))
  // No time to drain: the engine refuses new work at once (before the app knows; lifecycle.test.ts has the app's side), then closes.
  const drained = engine.drain(0)
  const refused = await post({ max_tokens: 2 })
  t.equal(refused.status, 503)
  t.equal(refused.headers.get('retry-after'), '1')
  t.same(await refused.json(), {
    error: {
      message: 'The server is shutting down; retry on another instance.',
      type: 'server_error',
      param: null,
      code: 'server_shutting_down',
    },
  })
  await drained
  const events = sseEvents(text + (await readRest(reader)))
  t.equal(events.at(-1), 'data: [DONE]')
  t.same(JSON.parse(events.at(-2)!.slice(6)), {
    error: {
      message: 'The server shut down before the request finished.',
      type: 'server_error',
      param: null,
      code: 'engine_unavailable',
    },
  })
  await engine.close()
  const notReady = await fetch(`${base}/health/ready`)
  t.equal(notReady.status, 503)
  t.same(await notReady.json(), { status: 'not_ready' })
})

t.test('an engine that cannot load its model fails to start with the loader error', async (t) => {
  await t.rejects(startEngine({ modelDir: '/nonexistent/model', intraOpThreads: 1 }), {
    name: 'KelixError',
    code: 'MODEL_DIR_MISSING',
  })
})
