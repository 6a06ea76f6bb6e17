/**
 * One pino line per finished request: id, status, model, tokens, timings; never
 * the prompt unless asked for. The usage and timings are the engine's (here a
 * scripted one's), so the line's numbers are exact.
 */
import { Writable } from 'node:stream'
import t from 'tap'
import { ScriptedEngineClient } from '../helpers/scripted-engine-client.js'
import { hello, readUntil, serve } from '../routes/serve.js'

type Line = Record<string, unknown>
const completed = (lines: Line[]) => lines.filter((l) => l.msg === 'request completed')

/** A log stream; `completedLines(n)` resolves once n lines say "request completed" (a line is written when the response closes, which can be after the client has it). */
function capture(): { stream: Writable; lines: () => Line[]; completedLines: (count: number) => Promise<Line[]> } {
  const chunks: string[] = []
  const waiters: Array<{ count: number; resolve: (lines: Line[]) => void }> = []
  const lines = () =>
    chunks
      .join('')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Line)
  const check = () => {
    const done = completed(lines())
    for (const waiter of waiters.filter((w) => done.length >= w.count)) {
      waiters.splice(waiters.indexOf(waiter), 1)
      waiter.resolve(done)
    }
  }
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk))
      check()
      done()
    },
  })
  const completedLines = (count: number) =>
    new Promise<Line[]>((resolve) => {
      waiters.push({ count, resolve })
      check()
    })
  return { stream, lines, completedLines }
}

t.test('a finished request logs one line with its id, status, model, tokens and timings, and no prompt', async (t) => {
  const log = capture()
  const engine = new ScriptedEngineClient()
  engine.onSubmit = (call) => {
    call.promptTokens = 12
    call.answer(['a', 'b', 'c'])
  }
  const { post } = await serve(t, engine, { logger: { level: 'info', stream: log.stream } })
  const res = await post(hello({ messages: [{ role: 'user', content: 'my secret prompt' }], max_tokens: 3 }), {
    'x-request-id': 'req-1',
  })
  t.equal(res.status, 200)
  t.equal(res.headers.get('x-request-id'), 'req-1')
  await res.json()
  const lines = await log.completedLines(1)
  t.equal(lines.length, 1)
  t.match(lines[0], {
    level: 30,
    reqId: 'req-1',
    method: 'POST',
    url: '/v1/chat/completions',
    status: 200,
    model: 'kelix-tiny',
    stream: false,
    n: 1,
    promptTokens: 12,
    completionTokens: 3,
    queueMs: 1,
    ttftMs: 2,
    durationMs: Number,
  })
  t.notMatch(JSON.stringify(log.lines()), /secret/, 'no prompt text anywhere in the logs')
})

t.test('errors, streams and clients that leave are logged too', async (t) => {
  const log = capture()
  const engine = new ScriptedEngineClient()
  const { base, post } = await serve(t, engine, { logger: { level: 'info', stream: log.stream } })
  await (await post(hello({ temperature: 7 }))).json()
  await (await post(hello({ stream: true, max_tokens: 2 }))).text()
  engine.onSubmit = () => {} // held: the next stream runs until its client leaves
  const controller = new AbortController()
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(hello({ stream: true, max_tokens: 2000 })),
    signal: controller.signal,
  })
  await readUntil(res, (text) => text.includes('"role":"assistant"'))
  controller.abort()
  const [bad, stream, left] = await log.completedLines(3)
  t.match(bad, { status: 400, errorCode: 'invalid_value', model: 'kelix-tiny' })
  t.match(stream, { status: 200, stream: true, completionTokens: 2, ttftMs: 2 })
  t.match(left, { status: 200, stream: true, clientLeft: true })
  t.match(String(bad!.reqId), /^[0-9a-f-]{36}$/, 'a generated id when the client sends none')
  t.equal(engine.calls[1]?.wasAborted, true, 'the engine was told')
})

t.test('probes log at debug level, and an ill-formed x-request-id is replaced', async (t) => {
  const log = capture()
  const { base } = await serve(t, new ScriptedEngineClient(), { logger: { level: 'debug', stream: log.stream } })
  const res = await fetch(`${base}/health/ready`, { headers: { 'x-request-id': 'bad id with spaces' } })
  const id = res.headers.get('x-request-id')
  t.match(id, /^[0-9a-f-]{36}$/)
  const [probe] = await log.completedLines(1)
  t.match(
    probe,
    { level: 20, reqId: id, url: '/health/ready', status: 200 },
    'debug (20): an info-level log leaves it out',
  )
})

t.test('with logPrompts the line carries the messages, images as their size', async (t) => {
  const log = capture()
  const { post } = await serve(t, new ScriptedEngineClient(), {
    logger: { level: 'info', stream: log.stream },
    config: { logPrompts: true },
  })
  const png = 'iVBORw0KGgo='
  const content = [
    { type: 'text', text: 'tell me' },
    { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } },
  ]
  await (
    await post(
      hello({
        messages: [
          { role: 'user', content: 'tell me' },
          { role: 'assistant', content: 'what?' },
          { role: 'user', content },
        ],
      }),
    )
  ).json()
  const [line] = await log.completedLines(1)
  t.same(line!.messages, [
    { role: 'user', content: 'tell me' },
    { role: 'assistant', content: 'what?' },
    { role: 'user', content: ['tell me', { image_bytes: 8 }] },
  ])
})
