/**
 * `GET /metrics` in the Prometheus text format, and the `onResponse` hook that
 * times every HTTP response. Wiring, in buildApp:
 *
 *   const metrics = createMetrics()
 *   app.addHook('onResponse', httpMetricsHook(metrics))   // on the root instance: sees every route
 *   await app.register(metricsRoute, { registry: metrics.registry })
 */
import type { FastifyInstance, onResponseAsyncHookHandler } from 'fastify'
import type { Registry } from 'prom-client'
import type { Metrics } from './metrics.js'

export async function metricsRoute(app: FastifyInstance, opts: { registry: Registry }): Promise<void> {
  app.get('/metrics', async (_request, reply) => {
    const body = await opts.registry.metrics()
    return reply.type(opts.registry.contentType).send(body)
  })
}

/** Records each response by route pattern (bounded label set), method and status code. */
export function httpMetricsHook(metrics: Pick<Metrics, 'httpOnResponse'>): onResponseAsyncHookHandler {
  return async (request, reply) => {
    metrics.httpOnResponse(request.routeOptions.url, request.method, reply.statusCode, reply.elapsedTime / 1000)
  }
}
