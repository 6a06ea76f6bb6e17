/**
 * Streams over raw HTTP: exact SSE framing and headers, heartbeats while a
 * request waits for a place, a client that leaves (the engine frees its
 * sequences), 429 with Retry-After from a full queue, and an engine that
 * stops mid-stream (a final error event, then [DONE]).
 */
import t from 'tap'
import type { LocalEngineClient } from '../../src/batching/http-thread/engine-client.js'
import { MODEL, hello, serve, tinyEngine } from './serve.js'

/** Splits an SSE body into its events (comments included), checking the framing. */
function events(body: string): string[] {
  t.ok(body.endsWith('\n\n'), 'the body ends with a blank line')
  return body.slice(0, -2).split('\n\n')
}

async function settled(engine: LocalEngineClient, timeoutMs = 3000): Promise<{ running: number; waiting: number; engineSequences: number; kvSequences: number }> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const stats = await engine.engineStats()
    if ((stats.running === 0 && stats.engineSequences === 0 && engine.inFlight === 0) || Date.now() > deadline) return stats
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

t.test('one engine, one sequence at a time', async (t) => {
  const engine = await tinyEngine(t, { limits: { maxNumSeqs: 1 }, maxWaiting: 1 })

  t.test('a stream is framed as data: events with the SSE headers and the echoed request id', async (t) => {
    const { post } = await serve(t, engine)
    const res = await post(hello({ stream: true, max_tokens: 3, temperature: 0 }), { 'x-request-id': 'req-abc.123' })
    t.equal(res.status, 200)
    t.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8')
    t.equal(res.headers.get('cache-control'), 'no-cache')
    t.equal(res.headers.get('x-accel-buffering'), 'no')
    t.equal(res.headers.get('x-request-id'), 'req-abc.123')
    const all = events(await res.text())
    t.ok(all.every((e) => e.startsWith('data: ') && !e.slice(6).includes('\n')), 'each event is one data: line')
    t.equal(all.at(-1), 'data: [DONE]')
    const chunks = all.slice(0, -1).map((e) => JSON.parse(e.slice(6)))
    t.same(chunks[0], {
      id: chunks[0].id,
      object: 'chat.completion.chunk',
      created: chunks[0].created,
      model: MODEL,
      system_fingerprint: 'fp_test',
      choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
    })
    t.same(chunks.at(-1).choices, [{ index: 0, delta: {}, logprobs: null, finish_reason: 'length' }])
  })

  t.test('a stream waiting for a place gets keep-alive comments before its first token', async (t) => {
    const { post } = await serve(t, engine, { config: { sseHeartbeatMs: 50 } })
    const long = post(hello({ max_tokens: 400, temperature: 0 }))
    await new Promise((resolve) => setTimeout(resolve, 100))
    const res = await post(hello({ stream: true, max_tokens: 2 }))
    const all = events(await res.text())
    const firstContent = all.findIndex((e) => e.startsWith('data: {') && !e.includes('"role"'))
    t.ok(all.slice(0, firstContent).includes(': keep-alive'), `a heartbeat came before the first content chunk: ${all.slice(0, firstContent).filter((e) => e.startsWith(':')).length}`)
    t.equal((await long).status, 200)
  })

  t.test('a full waiting queue answers 429 with Retry-After, before any header of a stream', async (t) => {
    const { post } = await serve(t, engine)
    const running = post(hello({ max_tokens: 400 }))
    await new Promise((resolve) => setTimeout(resolve, 100))
    const waiting = post(hello({ max_tokens: 2 }))
    await new Promise((resolve) => setTimeout(resolve, 50))
    const refused = await post(hello({ stream: true, max_tokens: 2 }))
    t.equal(refused.status, 429)
    t.equal(refused.headers.get('retry-after'), '1')
    t.equal(refused.headers.get('content-type'), 'application/json; charset=utf-8')
    t.same(await refused.json(), {
      error: { message: 'The server is overloaded (queue full); retry later.', type: 'rate_limit_error', param: null, code: 'rate_limit_exceeded' },
    })
    t.equal((await running).status, 200)
    t.equal((await waiting).status, 200)
  })

  t.test('a client that leaves mid-stream aborts its generation and the engine frees the sequence', async (t) => {
    const { base, post } = await serve(t, engine)
    const controller = new AbortController()
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(hello({ stream: true, max_tokens: 3000, temperature: 0 })),
      signal: controller.signal,
    })
    const reader = res.body!.getReader()
    let seen = ''
    while (!seen.includes('"content":"') || seen.split('data: ').length < 5) seen += new TextDecoder().decode((await reader.read()).value)
    const running = await engine.engineStats()
    t.equal(running.running, 1, 'the sequence runs while the client reads')
    const leftAt = Date.now()
    controller.abort()
    const stats = await settled(engine)
    t.match(stats, { running: 0, waiting: 0, engineSequences: 0, kvSequences: 0 })
    t.equal(engine.inFlight, 0)
    t.ok(Date.now() - leftAt < 2000, 'freed long before 3000 tokens could be generated')
    const after = await post(hello({ max_tokens: 2 }))
    t.equal(after.status, 200, 'the engine serves the next request')
  })

  t.test('a client that leaves a non-streaming request aborts it too', async (t) => {
    const { base } = await serve(t, engine)
    const controller = new AbortController()
    const pending = fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(hello({ max_tokens: 3000 })),
      signal: controller.signal,
    }).catch((err: unknown) => err)
    for (let i = 0; i < 100 && (await engine.engineStats()).running === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    controller.abort()
    t.match(await pending, { name: 'AbortError' })
    t.match(await settled(engine), { running: 0, engineSequences: 0, kvSequences: 0 })
    t.equal(engine.inFlight, 0)
  })
})

t.test('an engine that stops mid-stream ends the stream with an error event, then [DONE]', async (t) => {
  const engine = await tinyEngine(t)
  const { base } = await serve(t, engine)
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(hello({ stream: true, max_tokens: 3000 })),
  })
  t.equal(res.status, 200)
  const reader = res.body!.getReader()
  let body = ''
  while (!body.includes('"content":"')) body += new TextDecoder().decode((await reader.read()).value)
  await engine.close()
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    body += new TextDecoder().decode(value)
  }
  const all = events(body)
  t.equal(all.at(-1), 'data: [DONE]')
  t.same(JSON.parse(all.at(-2)!.slice(6)), {
    error: { message: 'The server shut down before the request finished.', type: 'server_error', param: null, code: 'engine_unavailable' },
  })
})
