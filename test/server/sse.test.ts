/** The SSE writer on a real socket: framing, keep-alive comments, backpressure, and the client leaving. */
import { once } from 'node:events'
import { createServer, type ServerResponse } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { SseWriter } from '../../src/http/sse.js'

/** A server whose one request hands its response to the test, a raw client socket, and a wait for what it has received. */
async function pair(t: Test): Promise<{
  res: ServerResponse
  socket: Socket
  received: () => string
  until: (test: (text: string) => boolean) => Promise<void>
}> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1')
  let text = ''
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')))
  socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
  const [, res] = (await once(server, 'request')) as [unknown, ServerResponse]
  const until = (test: (text: string) => boolean) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (!test(text)) return
        socket.off('data', check)
        resolve()
      }
      socket.on('data', check)
      check()
    })
  return { res, socket, received: () => text, until }
}

/** The payload of a chunked HTTP/1.1 body. */
function dechunk(body: string): string {
  let out = ''
  for (let at = 0; ;) {
    const eol = body.indexOf('\r\n', at)
    const size = parseInt(body.slice(at, eol), 16)
    if (size === 0) return out
    out += body.slice(eol + 2, eol + 2 + size)
    at = eol + 2 + size + 2
  }
}

t.test('events are data: lines with a blank line after each, and quiet spells get a keep-alive comment', async (t) => {
  const { res, received, until } = await pair(t)
  const writer = new SseWriter(res, { 'x-request-id': 'r1' }, { heartbeatMs: 40 })
  await writer.send({ a: 1 })
  await until((text) => text.includes(': keep-alive\n\n'))
  await writer.send('[DONE]')
  writer.end()
  await until((text) => text.endsWith('\r\n0\r\n\r\n'))
  const split = received().indexOf('\r\n\r\n')
  const head = received().slice(0, split)
  t.match(head, /^HTTP\/1.1 200 OK\r\n/)
  t.match(head, /\r\ncontent-type: text\/event-stream; charset=utf-8\r\n/)
  t.match(head, /\r\nx-request-id: r1\r\n/)
  t.match(dechunk(received().slice(split + 4)), /^data: \{"a":1\}\n\n(: keep-alive\n\n){1,4}data: \[DONE\]\n\n$/)
})

t.test('a send waits while the socket is full, and goes on once the client reads', async (t) => {
  const { res, socket } = await pair(t)
  socket.pause()
  const writer = new SseWriter(res, {}, { heartbeatMs: 60_000 })
  const big = { text: 'x'.repeat(256 * 1024) }
  let resumed = false
  // Resolves, once the send is done, with whether the client had resumed reading by then.
  let stalled: Promise<boolean> | undefined
  for (let i = 0; i < 200 && stalled === undefined; i++) {
    const p = writer.send(big).then(() => resumed)
    if (!res.writableNeedDrain) {
      await p
      continue
    }
    // Node's buffer is full and the send waits for 'drain'; the kernel may still take it all, in which case the
    // send ends on its own and filling goes on. A writer that does not wait never gets here twice in a row.
    const waiting = await Promise.race([
      p.then(() => false),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 100)),
    ])
    if (waiting) stalled = p
  }
  t.ok(stalled, 'a send waited while the client did not read')
  resumed = true
  socket.resume()
  t.equal(await stalled, true, 'the pending send finished after the client read')
  writer.end()
})

t.test('a client that leaves aborts the signal and later sends return at once', async (t) => {
  const { res, socket } = await pair(t)
  const writer = new SseWriter(res, {}, { heartbeatMs: 60_000 })
  await writer.send({ a: 1 })
  socket.destroy()
  await once(writer.signal, 'abort')
  t.ok(writer.closed)
  await writer.send({ a: 2 })
  writer.end()
  writer.end()
})
