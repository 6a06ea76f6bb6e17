/**
 * Kubernetes probes. `live`: the process answers. `ready`: the model is
 * loaded and the engine is up. `startup`: the same as ready, for a startup
 * probe that tolerates slow model loads without the liveness probe killing the pod.
 */
import type { FastifyInstance } from 'fastify'

export interface HealthSource {
  ready(): boolean
}

export async function healthRoutes(app: FastifyInstance, opts: { health: HealthSource }): Promise<void> {
  app.get('/health/live', async () => ({ status: 'ok' }))
  const readiness = async (_request: unknown, reply: import('fastify').FastifyReply) => {
    if (opts.health.ready()) return { status: 'ready' }
    return reply.code(503).send({ status: 'not_ready' })
  }
  app.get('/health/ready', readiness)
  app.get('/health/startup', readiness)
}
