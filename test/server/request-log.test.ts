/** One pino line per finished request: id, status, model, tokens, timings; never the prompt unless asked for. */
import { Writable } from 'node:stream'
import t from 'tap'
import { hello, serve, tinyEngine } from '../routes/serve.js'

const engine = await tinyEngine(t)

function capture(): { stream: Writable; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk))
      done()
    },
  })
  return { stream, lines: () => chunks.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) }
}

const completed = (lines: Array<Record<string, unknown>>) => lines.filter((l) => l.msg === 'request completed')
const settle = () => new Promise((resolve) => setTimeout(resolve, 50))

t.test('a finished request logs one line with its id, status, model, tokens and timings, and no prompt', async (t) => {
  const log = capture()
  const { post } = await serve(t, engine, { logger: { level: 'info', stream: log.stream } })
  const res = await post(hello({ messages: [{ role: 'user', content: 'my secret prompt' }], max_tokens: 3 }), { 'x-request-id': 'req-1' })
  t.equal(res.status, 200)
  t.equal(res.headers.get('x-request-id'), 'req-1')
  await res.json()
  await settle()
  const lines = completed(log.lines())
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
    promptTokens: Number,
    completionTokens: 3,
    queueMs: Number,
    ttftMs: Number,
    durationMs: Number,
  })
  t.notMatch(JSON.stringify(log.lines()), /secret/, 'no prompt text anywhere in the logs')
})

t.test('errors, streams and clients that leave are logged too', async (t) => {
  const log = capture()
  const { base, post } = await serve(t, engine, { logger: { level: 'info', stream: log.stream } })
  await (await post(hello({ temperature: 7 }))).json()
  await (await post(hello({ stream: true, max_tokens: 2 }))).text()
  const controller = new AbortController()
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(hello({ stream: true, max_tokens: 2000 })),
    signal: controller.signal,
  })
  await res.body!.getReader().read()
  controller.abort()
  await settle()
  await settle()
  const [bad, stream, left] = completed(log.lines())
  t.match(bad, { status: 400, errorCode: 'invalid_value', model: 'kelix-tiny' })
  t.match(stream, { status: 200, stream: true, completionTokens: 2, ttftMs: Number })
  t.match(left, { status: 200, stream: true, clientLeft: true })
  t.match(String(bad!.reqId), /^[0-9a-f-]{36}$/, 'a generated id when the client sends none')
})

t.test('probes log at debug level, and an ill-formed x-request-id is replaced', async (t) => {
  const log = capture()
  const { base } = await serve(t, engine, { logger: { level: 'info', stream: log.stream } })
  const res = await fetch(`${base}/health/ready`, { headers: { 'x-request-id': 'bad id with spaces' } })
  t.match(res.headers.get('x-request-id'), /^[0-9a-f-]{36}$/)
  await settle()
  t.same(completed(log.lines()), [])
})

t.test('with logPrompts the line carries the messages, images as their size', async (t) => {
  const log = capture()
  const { post } = await serve(t, engine, { logger: { level: 'info', stream: log.stream }, config: { logPrompts: true } })
  await (await post(hello({ messages: [{ role: 'user', content: 'tell me' }] }))).json()
  await settle()
  t.same(completed(log.lines())[0]!.messages, [{ role: 'user', content: 'tell me' }])
})
