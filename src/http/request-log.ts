/**
 * Request ids and the one log line per finished request. `x-request-id` is
 * honoured when it looks like an id (else one is generated) and echoed on
 * every response, streams included. The line carries status, model, tokens
 * and timings, never the prompt unless `logPrompts` asks for it. It is
 * written when the raw response closes, so hijacked SSE responses and clients
 * that left are logged too.
 */
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance } from 'fastify'

/** Told of every response (the server's metrics). */
export interface ResponseObserver {
  httpOnResponse(route: string | undefined, method: string, statusCode: number, seconds: number): void
}

/** What a route learns about its request, for the log line. */
export interface RequestStats {
  model?: string
  stream?: boolean
  n?: number
  promptTokens?: number
  imagePositions?: number
  completionTokens?: number
  queueMs?: number
  ttftMs?: number
  /** The stable code of the error the request ended with. */
  errorCode?: string
  /** Only with logPrompts. */
  messages?: unknown
}

declare module 'fastify' {
  interface FastifyRequest {
    stats: RequestStats
  }
}

const ID = /^[\w.:-]{1,128}$/

/** For fastify's `genReqId`: the client's `x-request-id` when well-formed, else a UUID. */
export function requestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id']
  return typeof given === 'string' && ID.test(given) ? given : randomUUID()
}

/** Probes are frequent; their lines go out at debug level. */
const isProbe = (url: string) => url.startsWith('/health/')

/**
 * One log line per request, written when the raw response closes (streams
 * included); the same moment records the HTTP duration metric when `metrics` is given.
 */
export function installRequestLog(app: FastifyInstance, metrics?: ResponseObserver): void {
  app.decorateRequest('stats', null as unknown as RequestStats)
  app.addHook('onRequest', async (request, reply) => {
    request.stats = {}
    void reply.header('x-request-id', request.id)
    const started = performance.now()
    const res = reply.raw
    res.once('close', () => {
      const clientLeft = !res.writableFinished
      const line = {
        method: request.method,
        url: request.url.split('?')[0],
        status: clientLeft && !res.headersSent ? 499 : res.statusCode,
        durationMs: Math.round(performance.now() - started),
        ...request.stats,
        ...(clientLeft ? { clientLeft: true } : {}),
      }
      metrics?.httpOnResponse(
        request.routeOptions.url,
        request.method,
        line.status,
        (performance.now() - started) / 1000,
      )
      if (isProbe(request.url)) request.log.debug(line, 'request completed')
      else request.log.info(line, 'request completed')
    })
  })
}
