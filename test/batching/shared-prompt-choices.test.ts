/** n > 1 through the real worker: the prompt is computed once, the other choices take it from the prefix cache. */
import t from 'tap'
import type { EngineObserver, StepRecord } from '../../src/batching/client-types.js'
import { startEngine } from '../../src/batching/http-thread/engine-client.js'
import { GREEDY } from '../../src/engine/types.js'
import { tinyModelDir } from '../helpers/tiny-model.js'

async function run(prefixCachePositions: number) {
  const steps: StepRecord[] = []
  const observer: EngineObserver = {
    requestFinished: () => {},
    requestRejected: () => {},
    step: (record) => steps.push(record),
    gauges: () => {},
    imageRequestFinished: () => {},
    imageRequestAborted: () => {},
    image: () => {},
    engineUp: () => {},
    executionProvider: () => {},
  }
  const engine = await startEngine({ modelDir: await tinyModelDir(), intraOpThreads: 1, prefixCachePositions, observer })
  try {
    const gen = await engine.submit({
      messages: [{ role: 'user', content: 'Three candidate answers to one long question about queues, please.' }],
      n: 3,
      sampling: { ...GREEDY, temperature: 1, seed: 5 },
      maxNewTokens: 4,
      stop: [],
    })
    const finished = new Set<number>()
    for await (const event of gen.events) if (event.type === 'finish') finished.add(event.choice)
    return { promptTokens: gen.promptTokens, finished: finished.size, steps, stats: await engine.engineStats() }
  } finally {
    await engine.close()
  }
}

t.test('choices 1 and 2 reuse every whole chunk of the prompt choice 0 computed', async (t) => {
  const { promptTokens, finished, steps, stats } = await run(4096)
  t.equal(finished, 3)
  const chunked = Math.floor((promptTokens - 1) / 8) * 8
  t.ok(chunked >= 48, `a prompt of ${promptTokens} positions has ${chunked} in whole chunks`)
  t.equal(steps.reduce((a, s) => a + s.prefixHitPositions, 0), 2 * chunked, 'two choices, each reusing all the whole chunks')
  t.equal(steps.reduce((a, s) => a + s.batchedTokens, 0), promptTokens + 2 * (promptTokens - chunked) + 3 * 3, 'computed: one prompt, two tails, then 3 decodes per choice')
  t.same(stats, { running: 0, waiting: 0, kvUsage: 0, kvSequences: 0, engineSequences: 0, denoiseJobs: 0 })
})

t.test('without prefix caching every choice computes the prompt, together', async (t) => {
  const { promptTokens, steps } = await run(0)
  t.equal(steps.reduce((a, s) => a + s.prefixHitPositions, 0), 0)
  t.equal(steps[0]?.batchedTokens, 3 * promptTokens, 'all three prompts in the first step')
})
