/**
 * What the worker checks and reports once the model is loaded: a KV capacity
 * that cannot hold the model's context is refused, naming the setting; the
 * model's generation defaults (config.json `generation`) reach the client.
 */
import t from 'tap'
import { startEngine } from '../../src/batching/http-thread/engine-client.js'
import { TINY_CONFIG } from '../../src/builder/tiny.js'
import { limitSettingNames } from '../../src/server/config.js'
import { tinyModelDir } from '../helpers/tiny-model.js'

t.test('a KV capacity smaller than the context is refused at start-up, naming the setting', async (t) => {
  await t.rejects(
    startEngine({
      modelDir: await tinyModelDir(),
      intraOpThreads: 1,
      limits: { kvCapacity: 1024 },
      limitNames: limitSettingNames(),
    }),
    {
      name: 'KelixError',
      code: 'SCHEDULER_CONFIG_INVALID',
      message:
        "--kv-capacity/KELIX_KV_CAPACITY (1024) must hold the model's context (4096) alone, in whole pages of 16 (1024 usable positions): one full-length sequence must fit the KV cache",
    },
  )
})

t.test("the model's generation defaults are the client's", async (t) => {
  const engine = await startEngine({ modelDir: await tinyModelDir(), intraOpThreads: 1 })
  t.teardown(() => engine.close())
  const g = TINY_CONFIG.generation
  t.same(engine.generationDefaults, {
    maxNewTokens: g.max_new_tokens,
    temperature: g.temperature,
    topP: g.top_p,
    topK: g.top_k,
  })
})
