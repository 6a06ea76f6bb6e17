/**
 * A client that sends a body over the limit gets the 413, not EPIPE or
 * ECONNRESET: the server reads and drops the rest of the body before it
 * answers and closes (src/http/unread-body.ts), up to a bound.
 *
 * The client runs in its own process, as a real one would: in the server's
 * process the two share one event loop and the race does not show.
 */
import { execFile } from 'node:child_process'
import { connect } from 'node:net'
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import type { EngineClient } from '../../src/batching/client-types.js'
import { installUnreadBodyDrain } from '../../src/http/unread-body.js'
import { buildApp } from '../../src/server/app.js'

/** The HTTP layer alone: a body over the limit is refused before the engine is asked anything. */
function engineNotUsed(): EngineClient {
  return new Proxy({} as EngineClient, {
    get(_, key) {
      if (key === 'ready') return () => true
      if (key === 'close' || key === 'drain') return async () => {}
      throw new Error(`the engine is not used by these tests (engine.${String(key)})`)
    },
  })
}

interface Outcome {
  status?: number
  body?: string
  error?: string
}

/** Node's global fetch in a child process: `requests` POSTs of `mb` MB each, one after another. */
const CLIENT = `
const [url, mb, requests, streamed] = process.argv.slice(1)
const body = new Uint8Array(Number(mb) * 1024 * 1024).fill(0x20)
const outcomes = []
for (let i = 0; i < Number(requests); i++) {
  const init = { method: 'POST', headers: { 'content-type': 'application/json' }, body }
  if (streamed === 'streamed') {
    // No Content-Length: chunked, so the server finds out only once past the limit.
    let sent = 0
    init.body = new ReadableStream({ pull(c) { if (sent >= body.length) c.close(); else { c.enqueue(body.subarray(sent, sent + 65536)); sent += 65536 } } })
    init.duplex = 'half'
  }
  try {
    const res = await fetch(url, init)
    outcomes.push({ status: res.status, body: await res.text() })
  } catch (err) {
    outcomes.push({ error: String(err.cause?.code ?? err.cause?.message ?? err.message) })
  }
}
process.stdout.write(JSON.stringify(outcomes))
`

function fetchInChild(url: string, mb: number, requests: number, streamed = false): Promise<Outcome[]> {
  return new Promise((resolve, reject) => {
    const args = [
      '--input-type=module',
      '-e',
      CLIENT,
      url,
      String(mb),
      String(requests),
      streamed ? 'streamed' : 'sized',
    ]
    execFile(process.execPath, args, { maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`client failed: ${err.message}\n${stderr}`))
      else resolve(JSON.parse(stdout) as Outcome[])
    })
  })
}

const TOO_LARGE = {
  error: {
    message: 'The request body is larger than this server accepts.',
    type: 'invalid_request_error',
    param: null,
    code: 'request_too_large',
  },
}

t.test('an 80 MB JSON body gets the OpenAI 413 every time, with or without a Content-Length', async (t) => {
  const app = await buildApp({
    logger: false,
    engine: engineNotUsed(),
    model: { id: 'kelix-tiny', aliases: [], created: 1700000000 },
  })
  t.teardown(() => app.close())
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  for (const streamed of [false, true]) {
    // Before the fix, about one request in three ended in EPIPE.
    const outcomes = await fetchInChild(`${base}/v1/chat/completions`, 80, 8, streamed)
    t.same(
      outcomes.map((o) => o.error ?? o.status),
      outcomes.map(() => 413),
      streamed ? 'chunked' : 'with Content-Length',
    )
    for (const outcome of outcomes.filter((o) => o.body !== undefined)) t.same(JSON.parse(outcome.body!), TOO_LARGE)
  }
})

/** A raw HTTP/1.1 exchange: sends `head` and `body`, then waits (without ending) for the server to answer and close. */
function rawExchange(port: number, head: string, body: string): Promise<{ response: string; ms: number }> {
  return new Promise((resolve) => {
    const started = Date.now()
    let response = ''
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(head + body)
    })
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => (response += chunk))
    // A reset once the server gives up on the body: what was read before it is what counts.
    socket.on('error', () => {})
    socket.on('close', () => resolve({ response, ms: Date.now() - started }))
  })
}

/** A server with a 1000-byte body limit that waits at most `maxMs` and `maxBytes` for an unread body. */
async function drainingServer(t: Test, maxMs: number): Promise<number> {
  const app = Fastify({ bodyLimit: 1000 })
  installUnreadBodyDrain(app, { maxBytes: 100_000, maxMs })
  app.post('/', async () => 'never')
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  return (app.server.address() as { port: number }).port
}

t.test('the wait for the rest of the body is bounded in time and in bytes', async (t) => {
  const head = (length?: number) =>
    `POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${length === undefined ? 'Transfer-Encoding: chunked' : `Content-Length: ${length}`}\r\n\r\n`

  // A client that stops sending half-way gets its 413 once the wait is over (never before its timer).
  const stalled = await rawExchange(await drainingServer(t, 300), head(50_000), ' '.repeat(25_000))
  t.match(stalled.response, /^HTTP\/1\.1 413 /)
  t.ok(stalled.ms >= 300, `answered after the wait (${stalled.ms} ms)`)

  // Past the byte bound nothing is waited for: with a ten-minute time bound, a wait would hang the test.
  const port = await drainingServer(t, 600_000)
  const declared = await rawExchange(port, head(10_000_000), '')
  t.match(declared.response, /^HTTP\/1\.1 413 /, 'a body declaring more than the bound is answered at once')
  const chunked = await rawExchange(port, head(), `${(400_000).toString(16)}\r\n${' '.repeat(400_000)}\r\n`)
  t.match(chunked.response, /^HTTP\/1\.1 413 /, 'a chunked body going past the bound is answered at once')
})
