/** The server on the embedded model, over real HTTP: probes and the model list. */
import t from 'tap'
import { startEngine } from '../../src/batching/http-thread/engine-client.js'
import { buildApp } from '../../src/server/app.js'
import { tinyModelDir } from '../helpers/tiny-model.js'

t.test('a started server is ready and lists the served model', async (t) => {
  const engine = await startEngine({ modelDir: await tinyModelDir(), intraOpThreads: 1 })
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
  t.same(await ready.json(), { status: 'ready', execution_provider: 'cpu' })

  const models = await fetch(`${base}/v1/models`)
  t.equal(models.status, 200)
  t.same(await models.json(), { object: 'list', data: [{ id: 'kelix-tiny', object: 'model', created: 1700000000, owned_by: 'kelix-serve' }] })

  const missing = await fetch(`${base}/v1/models/gpt-4o`)
  t.equal(missing.status, 404)
  t.same(await missing.json(), {
    error: { message: "The model 'gpt-4o' does not exist. This server serves 'kelix-tiny'.", type: 'invalid_request_error', param: 'model', code: 'model_not_found' },
  })

  await engine.close()
  const notReady = await fetch(`${base}/health/ready`)
  t.equal(notReady.status, 503)
  t.same(await notReady.json(), { status: 'not_ready' })
})

t.test('an engine that cannot load its model fails to start with the loader error', async (t) => {
  await t.rejects(startEngine({ modelDir: '/nonexistent/model', intraOpThreads: 1 }), {
    name: 'EngineStartError',
    code: 'MODEL_DIR_MISSING',
  })
})
