/**
 * A response that is ready before the request body has all arrived (413 past
 * the body limit, a multipart limit, 401, 404, 415, 503 while draining) waits
 * until the rest of the body has been read and thrown away, then goes out.
 *
 * Without this, a client still writing a large body gets EPIPE or ECONNRESET
 * instead of the answer: such a response carries `Connection: close`, Node
 * destroys the socket as soon as it is written, and closing a socket with
 * unread data sends a reset, which also discards the response the client has
 * not read yet.
 *
 * Bounded: a body that declares more than `maxBytes`, or that goes on past
 * `maxBytes` or `maxMs`, is not waited for (the response goes out and the
 * connection closes, as before).
 */
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance } from 'fastify'

export interface UnreadBodyLimits {
  /** Most bytes read and discarded after the response was decided. */
  maxBytes: number
  /** Longest wait for the rest of the body, ms. */
  maxMs: number
}

export const UNREAD_BODY_LIMITS: UnreadBodyLimits = { maxBytes: 256 * 1024 * 1024, maxMs: 30_000 }

export function installUnreadBodyDrain(app: FastifyInstance, limits: UnreadBodyLimits = UNREAD_BODY_LIMITS): void {
  app.addHook('onSend', async (request, _reply, payload) => {
    const raw = request.raw
    if (raw.complete || raw.destroyed) return payload
    if (Number(raw.headers['content-length']) > limits.maxBytes) return payload
    await discardRest(raw, limits)
    return payload
  })
}

/** Reads the rest of the request and drops it; resolves at its end, when the connection goes, or past the limits. */
function discardRest(raw: IncomingMessage, { maxBytes, maxMs }: UnreadBodyLimits): Promise<void> {
  return new Promise((resolve) => {
    let bytes = 0
    const onData = (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes > maxBytes) done()
    }
    const done = () => {
      clearTimeout(timer)
      raw.off('data', onData).off('end', done).off('close', done).off('error', done)
      resolve()
    }
    const timer = setTimeout(done, maxMs)
    raw.on('data', onData).once('end', done).once('close', done).once('error', done)
    // A parser that stopped part-way (multipart past a limit) may still hold a pipe that no longer reads.
    raw.unpipe()
    raw.resume()
  })
}
