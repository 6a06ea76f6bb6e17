/**
 * The engine worker under load through the real EngineClient: 100 concurrent
 * requests, 30 of them aborted midway; the rest produce what they produce
 * alone, and nothing is left running or holding KV afterwards.
 */
import t, { type Test } from 'tap'
import type { GenerateRequest, Generation } from '../../src/batching/client-types.js'
import { startEngine, type LocalEngineClient } from '../../src/batching/http-thread/engine-client.js'
import { GREEDY } from '../../src/engine/types.js'
import { patternPng } from '../helpers/images.js'
import { tinyModelDir } from '../helpers/tiny-model.js'
import { IDLE_STATS } from '../helpers/idle-stats.js'

async function collect(gen: Generation) {
  const tokens: number[] = []
  let text = ''
  const finishes: string[] = []
  for await (const event of gen.events) {
    if (event.type === 'delta') {
      tokens.push(...event.tokenIds)
      text += event.text
    } else if (event.type === 'finish') finishes.push(event.reason)
    else if (event.type === 'error') throw event.error
  }
  return { tokens, text, finishes }
}

/** A fresh request each call: submit transfers (detaches) image buffers. */
function request(i: number, image?: Uint8Array): GenerateRequest {
  const text = `Request ${i % 10}: describe what you see${'.'.repeat(i % 4)}`
  return {
    messages: [
      {
        role: 'user',
        content:
          image === undefined
            ? text
            : [
                { type: 'image', image: { bytes: image.slice(), detail: 'low' } },
                { type: 'text', text },
              ],
      },
    ],
    n: 1,
    sampling: GREEDY,
    maxNewTokens: 6 + (i % 5),
    stop: [],
  }
}

async function started(t: Test, limits = {}): Promise<LocalEngineClient> {
  const engine = await startEngine({
    modelDir: await tinyModelDir(),
    limits: { maxNumSeqs: 16, maxBatchedTokens: 256, ...limits },
  })
  t.teardown(() => engine.close())
  return engine
}

// One engine for the tests that need no options of their own; each leaves it idle, and none counts on what another left in its prefix cache.
const shared = await started(t)

t.test(
  '100 concurrent requests with 30% aborted midway: the rest match their solo output and nothing leaks',
  async (t) => {
    const engine = shared
    const image = await patternPng(112, 112, 3)
    const requestFor = (i: number) => request(i, i % 4 === 0 ? image : undefined)
    // Request i has the same prompt and length as request i % 20.
    const solo = new Map<number, number[]>()
    for (let i = 0; i < 20; i++) solo.set(i, (await collect(await engine.submit(requestFor(i)))).tokens)

    const runs = Array.from({ length: 100 }, async (_, i) => {
      const controller = new AbortController()
      const gen = await engine.submit(requestFor(i), { signal: controller.signal })
      if (i % 10 < 3) {
        // Abort after the first delta (or at once if the reader is late).
        const iterator = gen.events[Symbol.asyncIterator]()
        await iterator.next()
        controller.abort()
        return { i, aborted: true, tokens: [] as number[] }
      }
      return { i, aborted: false, ...(await collect(gen)) }
    })
    const results = await Promise.all(runs)
    t.equal(results.filter((r) => r.aborted).length, 30)
    const completed = results.filter((r) => !r.aborted)
    t.equal(completed.length, 70)
    for (const r of completed) t.same(r.tokens, solo.get(r.i % 20), `request ${r.i} matches its solo run`)
    t.equal(engine.inFlight, 0, 'no request tracked on the HTTP thread')
    t.same(await engine.engineStats(), IDLE_STATS)
  },
)

t.test('a full waiting queue rejects with queue_full and Retry-After before any work', async (t) => {
  const engine = await startEngine({
    modelDir: await tinyModelDir(),
    maxWaiting: 2,
    limits: { maxNumSeqs: 1, maxBatchedTokens: 64 },
  })
  t.teardown(() => engine.close())
  const first = engine.submit({ ...request(1), maxNewTokens: 30 })
  const second = engine.submit({ ...request(2), maxNewTokens: 30 })
  await t.rejects(engine.submit(request(3)), {
    name: 'KelixError',
    code: 'queue_full',
    message: 'The server is overloaded (queue full); retry later.',
    fields: { retryAfterSeconds: 1 },
  })
  await collect(await first)
  await collect(await second)
  t.equal((await collect(await engine.submit(request(4)))).tokens.length, 10, 'accepted again once the queue drained')
})

t.test('a bad image is rejected at submit with invalid_image, nothing streamed', async (t) => {
  const engine = shared
  const bad: GenerateRequest = {
    ...request(0),
    messages: [
      { role: 'user', content: [{ type: 'image', image: { bytes: new Uint8Array([1, 2, 3]), detail: 'auto' } }] },
    ],
  }
  await t.rejects(engine.submit(bad), { name: 'KelixError', code: 'invalid_image' })
  t.same(await engine.engineStats(), IDLE_STATS)
})

t.test('a prompt plus max tokens over the context is context_length_exceeded with the numbers', async (t) => {
  const engine = shared
  await t.rejects(engine.submit({ ...request(0), maxNewTokens: 5000 }), {
    name: 'KelixError',
    code: 'context_length_exceeded',
    message:
      /maximum context length is 4096 tokens\. However, you requested \d+ tokens \(\d+ in the messages, 5000 in the completion\)/,
  })
})

t.test('n = 2 gives two finished choices and usage counting both', async (t) => {
  const engine = shared
  // A system prompt no other test sends: nothing of this prompt is in the prefix cache.
  const messages: GenerateRequest['messages'] = [
    { role: 'system', content: 'Only the n = 2 test says this.' },
    ...request(0).messages,
  ]
  const gen = await engine.submit({ ...request(0), messages, n: 2, sampling: { ...GREEDY, temperature: 1, seed: 3 } })
  const choices = new Set<number>()
  let done: unknown
  for await (const event of gen.events) {
    if (event.type === 'finish') choices.add(event.choice)
    if (event.type === 'done') done = event.usage
  }
  t.same([...choices].sort(), [0, 1])
  t.same(done, {
    promptTokens: gen.promptTokens,
    cachedPromptTokens: 0,
    completionTokens: 12,
    totalTokens: gen.promptTokens + 12,
  })
})

t.test('drain lets a running request finish, then refuses new ones with draining', async (t) => {
  const engine = await started(t)
  const gen = await engine.submit({ ...request(0), maxNewTokens: 20 })
  const result = collect(gen)
  const drained = engine.drain(30_000)
  await t.rejects(engine.submit(request(1)), { code: 'draining' })
  t.equal(engine.ready(), false)
  t.equal((await result).tokens.length, 20, 'the in-flight request completed')
  await drained
})
