/**
 * Builds the fastify application: plugins, routes and the one error handler
 * that turns every failure into an OpenAI-shaped body with the right status.
 */
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { healthRoutes, type HealthSource } from '../routes/health.js'
import { modelRoutes, type ServedModel } from '../routes/models.js'
import { ApiError } from './api-errors.js'

export interface AppOptions {
  logger: FastifyServerOptions['logger']
  model: ServedModel
  health: HealthSource
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger })
  app.setErrorHandler((err, request, reply) => {
    const apiError = toApiError(err)
    if (apiError.status >= 500) request.log.error({ err }, 'request failed')
    void reply.code(apiError.status).send(apiError.toBody())
  })
  app.setNotFoundHandler((request, reply) => {
    const error = new ApiError('not_found', `No route for ${request.method} ${request.url}`)
    void reply.code(error.status).send(error.toBody())
  })
  await app.register(healthRoutes, { health: options.health })
  await app.register(modelRoutes, { model: options.model })
  return app
}

/** Maps anything thrown in a handler to an ApiError; a client's mistake is never a 5xx. */
function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err
  const status = (err as { statusCode?: number }).statusCode
  if (status !== undefined && status >= 400 && status < 500) return new ApiError('invalid_request_error', (err as Error).message)
  return new ApiError('server_error', 'The server had an error while processing your request.')
}
