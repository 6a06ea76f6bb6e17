/**
 * n > 1 through the real worker: the prompt is computed once, the other
 * choices take it from the prefix cache; and the cached positions each request
 * reports (usage.prompt_tokens_details.cached_tokens over HTTP: prefix-cache-usage.test.ts).
 */
import t from 'tap'
import type { EngineObserver, GenerateRequest, Generation, StepRecord, Usage } from '../../src/batching/client-types.js'
import { startEngine } from '../../src/batching/http-thread/engine-client.js'
import { GREEDY } from '../../src/engine/types.js'
import { tinyModelDir } from '../helpers/tiny-model.js'
import { IDLE_STATS } from '../helpers/idle-stats.js'

/** The usage a generation ends with. */
async function usageOf(gen: Generation): Promise<Usage | undefined> {
  let usage: Usage | undefined
  for await (const event of gen.events) if (event.type === 'done') usage = event.usage
  return usage
}

/** One request with n = 3 (its steps recorded), then the same prompt again alone. */
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
  const engine = await startEngine({
    modelDir: await tinyModelDir(),
    intraOpThreads: 1,
    prefixCachePositions,
    observer,
  })
  try {
    const request: GenerateRequest = {
      messages: [{ role: 'user', content: 'Three candidate answers to one long question about queues, please.' }],
      n: 3,
      sampling: { ...GREEDY, temperature: 1, seed: 5 },
      maxNewTokens: 4,
      stop: [],
    }
    const gen = await engine.submit(request)
    const finished = new Set<number>()
    let usage: Usage | undefined
    for await (const event of gen.events) {
      if (event.type === 'finish') finished.add(event.choice)
      if (event.type === 'done') usage = event.usage
    }
    const first = { promptTokens: gen.promptTokens, finished: finished.size, steps: [...steps], usage }
    const again = await usageOf(await engine.submit({ ...request, n: 1 }))
    return { ...first, again, stats: await engine.engineStats() }
  } finally {
    await engine.close()
  }
}

t.test('choices 1 and 2 reuse every whole chunk of the prompt choice 0 computed', async (t) => {
  const { promptTokens, finished, steps, stats, usage, again } = await run(4096)
  t.equal(finished, 3)
  const chunked = Math.floor((promptTokens - 1) / 8) * 8
  t.ok(chunked >= 48, `a prompt of ${promptTokens} positions has ${chunked} in whole chunks`)
  t.equal(
    steps.reduce((a, s) => a + s.prefixHitPositions, 0),
    2 * chunked,
    'two choices, each reusing all the whole chunks',
  )
  t.equal(
    steps.reduce((a, s) => a + s.batchedTokens, 0),
    promptTokens + 2 * (promptTokens - chunked) + 3 * 3,
    'computed: one prompt, two tails, then 3 decodes per choice',
  )
  t.same(stats, IDLE_STATS)
  t.equal(usage?.cachedPromptTokens, 0, 'the first request found nothing cached')
  t.equal(again?.cachedPromptTokens, chunked, 'the same prompt again reports its whole chunks cached')
})

t.test('without prefix caching every choice computes the prompt, together', async (t) => {
  const { promptTokens, steps, usage, again } = await run(0)
  t.equal(
    steps.reduce((a, s) => a + s.prefixHitPositions, 0),
    0,
  )
  t.equal(steps[0]?.batchedTokens, 3 * promptTokens, 'all three prompts in the first step')
  t.same(
    [usage?.cachedPromptTokens, again?.cachedPromptTokens],
    [0, 0],
    'nothing is reported as cached, the same prompt again included',
  )
})
