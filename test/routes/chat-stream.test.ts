/**
 * Streams over raw HTTP. On a scripted engine: exact SSE framing and headers,
 * keep-alive comments while a request waits for its first token, 429 with
 * Retry-After from a full queue. On the tiny model: a client that leaves (the
 * engine frees its sequence). An engine that stops mid-stream is in
 * startup.test.ts, whose engine ends that way.
 */
import t from 'tap'
import { KelixError } from '../../src/errors/kelix-error.js'
import { EngineEvents } from '../helpers/engine-events.js'
import { ScriptedEngineClient } from '../helpers/scripted-engine-client.js'
import { TINY_CONFIG } from '../../src/builder/tiny.js'
import { MODEL, hello, readRest, readUntil, serve, sseEvents, tinyEngine } from './serve.js'
import { IDLE_STATS } from '../helpers/idle-stats.js'

/** Runs to its max tokens: <|im_end|> cannot be sampled. */
const endless = (extra: object) =>
  hello({ max_tokens: 3000, logit_bias: { [TINY_CONFIG.special_tokens.im_end]: -100 }, ...extra })

t.test('a stream is framed as data: events with the SSE headers and the echoed request id', async (t) => {
  const engine = new ScriptedEngineClient()
  engine.onSubmit = (call) => call.answer(['Hel', 'lo', ' you'], { finish: 'length' })
  const { post } = await serve(t, engine)
  const res = await post(hello({ stream: true, max_tokens: 3, temperature: 0 }), { 'x-request-id': 'req-abc.123' })
  t.equal(res.status, 200)
  t.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8')
  t.equal(res.headers.get('cache-control'), 'no-cache')
  t.equal(res.headers.get('x-accel-buffering'), 'no')
  t.equal(res.headers.get('x-request-id'), 'req-abc.123')
  const all = sseEvents(await res.text())
  t.ok(
    all.every((e) => e.startsWith('data: ') && !e.slice(6).includes('\n')),
    'each event is one data: line',
  )
  t.equal(all.at(-1), 'data: [DONE]')
  const chunks = all.slice(0, -1).map((e) => JSON.parse(e.slice(6)))
  const head = {
    id: chunks[0].id,
    object: 'chat.completion.chunk',
    created: chunks[0].created,
    model: MODEL,
    system_fingerprint: 'fp_test',
  }
  const choice = (delta: object, finish: string | null = null) => ({
    ...head,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  })
  t.match(head.id, /^chatcmpl-[0-9a-f]{32}$/)
  t.same(chunks, [
    choice({ role: 'assistant', content: '' }),
    choice({ content: 'Hel' }),
    choice({ content: 'lo' }),
    choice({ content: ' you' }),
    choice({}, 'length'),
  ])
})

t.test('a stream waiting for its first token gets keep-alive comments', async (t) => {
  const engine = new ScriptedEngineClient()
  engine.onSubmit = () => {} // held: the request waits until the test has seen a keep-alive
  const { post } = await serve(t, engine, { config: { sseHeartbeatMs: 20 } })
  const res = await post(hello({ stream: true, max_tokens: 2 }))
  const { text, reader } = await readUntil(res, (s) => s.includes(': keep-alive\n\n'))
  ;(await engine.call(0)).answer(['Hi', '!'])
  const all = sseEvents(text + (await readRest(reader)))
  const firstContent = all.findIndex((e) => e.startsWith('data: {') && e.includes('"content":"Hi"'))
  t.ok(firstContent > 0, 'the content came')
  t.ok(all.slice(0, firstContent).includes(': keep-alive'), 'a heartbeat came before the first content chunk')
  t.ok(
    all.filter((e) => !e.startsWith(':')).every((e) => e.startsWith('data: ')),
    'comments aside, only data: events',
  )
  t.equal(all.at(-1), 'data: [DONE]')
})

t.test('a full waiting queue answers 429 with Retry-After, before any header of a stream', async (t) => {
  const engine = new ScriptedEngineClient()
  // The real client's refusal (worker-engine.test.ts checks it is this one).
  engine.refusal = new KelixError('queue_full', 'The server is overloaded (queue full); retry later.', {
    retryAfterSeconds: 1,
  })
  const { post } = await serve(t, engine)
  const refused = await post(hello({ stream: true, max_tokens: 2 }))
  t.equal(refused.status, 429)
  t.equal(refused.headers.get('retry-after'), '1')
  t.equal(refused.headers.get('content-type'), 'application/json; charset=utf-8')
  t.same(await refused.json(), {
    error: {
      message: 'The server is overloaded (queue full); retry later.',
      type: 'rate_limit_error',
      param: null,
      code: 'rate_limit_exceeded',
    },
  })
  t.same(engine.calls, [], 'nothing was submitted')
})

t.test('on the tiny model, a client that leaves aborts its generation and the engine frees the sequence', async (t) => {
  const events = new EngineEvents()
  const engine = await tinyEngine(t, { observer: events })

  t.test('mid-stream', async (t) => {
    const { base, post } = await serve(t, engine)
    const controller = new AbortController()
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(endless({ stream: true })),
      signal: controller.signal,
    })
    await readUntil(res, (text) => text.split('"content":"').length > 4)
    t.equal((await engine.engineStats()).running, 1, 'the sequence runs while the client reads')
    const finished = events.next('finished')
    // The worker reports its gauges once the abort has freed the sequence.
    const freed = events.next('gauges', (g) => g.running === 0)
    controller.abort()
    const record = await finished
    t.equal(record.finishReason, 'abort')
    t.ok(record.completionTokens < 3000, `stopped after ${record.completionTokens} of its 3000 tokens`)
    await freed
    t.same(await engine.engineStats(), IDLE_STATS)
    t.equal(engine.inFlight, 0)
    t.equal((await post(hello({ max_tokens: 2 }))).status, 200, 'the engine serves the next request')
  })

  t.test('before a non-streaming answer', async (t) => {
    const { base } = await serve(t, engine)
    const controller = new AbortController()
    const running = events.next('step', (s) => s.running === 1)
    const pending = fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(endless({})),
      signal: controller.signal,
    }).catch((err: unknown) => err)
    await running
    const freed = events.next('gauges', (g) => g.running === 0)
    controller.abort()
    t.match(await pending, { name: 'AbortError' })
    await freed
    t.same(await engine.engineStats(), IDLE_STATS)
    t.equal(engine.inFlight, 0)
  })
})
