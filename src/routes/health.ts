/**
 * Kubernetes probes. `live`: the process answers. `ready`: the model is
 * loaded, the engine loop is alive and the server is not draining (a pod that
 * is shutting down leaves the Service at once). `startup`: the engine has been
 * ready at least once, for a startup probe that tolerates slow model loads
 * without the liveness probe killing the pod.
 */
import type { FastifyInstance, FastifyReply } from 'fastify'

export interface HealthSource {
  /** Engine ready and not draining. */
  ready(): boolean
  /** The execution provider the engine runs on, for the readiness body. */
  executionProvider(): string | undefined
}

const statusSchema = {
  type: 'object',
  properties: { status: { type: 'string' }, execution_provider: { type: 'string' } },
  required: ['status'],
} as const
const probe = (summary: string) => ({
  schema: { summary, tags: ['health'], response: { 200: statusSchema, 503: statusSchema } },
})

export async function healthRoutes(app: FastifyInstance, opts: { health: HealthSource }): Promise<void> {
  // Latched: a pod that started stays started, even while it drains or its engine restarts.
  let started = opts.health.ready()
  app.get('/health/live', probe('The process answers'), async () => ({ status: 'ok' }))
  app.get(
    '/health/ready',
    probe('Ready for requests: engine alive, not draining'),
    async (_request, reply: FastifyReply) => {
      const provider = opts.health.executionProvider()
      if (opts.health.ready())
        return { status: 'ready', ...(provider === undefined ? {} : { execution_provider: provider }) }
      return reply.code(503).send({ status: 'not_ready' })
    },
  )
  app.get('/health/startup', probe('The model has loaded'), async (_request, reply: FastifyReply) => {
    started ||= opts.health.ready()
    if (started) return { status: 'started' }
    return reply.code(503).send({ status: 'starting' })
  })
}
