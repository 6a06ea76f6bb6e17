/**
 * Builds the fastify application: request ids and logs, auth, the draining
 * gate, multipart, the OpenAPI collector, routes, and the one error handler
 * that turns every failure into an OpenAI-shaped body with the right status.
 *
 *   onRequest:  request id + log line ─► auth (401) ─► draining (503)
 *   parse:      JSON (bodyLimit → 413) | multipart (file limits → 413)
 *   route:      preValidation (multipart → body) ─► schema (400 + param) ─► handler
 *   send:       a body not read to its end is read and dropped first (bounded), so a client still
 *               writing gets the answer instead of a reset (http/unread-body.ts)
 */
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { EngineClient } from '../batching/client-types.js'
import { chatCompletionRoutes } from '../routes/chat-completions.js'
import { completionRoutes } from '../routes/completions.js'
import { playgroundRoute } from '../routes/playground.js'
import { responseRoutes } from '../routes/responses.js'
import { tokenizeRoutes } from '../routes/tokenize.js'
import type { RemoteImageSource } from '../http/remote-image.js'
import { healthRoutes } from '../routes/health.js'
import { imageGenerationRoutes } from '../routes/images-generations.js'
import { modelRoutes, type ServedModel } from '../routes/models.js'
import { installAuth, isOpenPath } from '../http/auth.js'
import { loadServerConfig, type ServerConfig } from './config.js'
import { errorBody, errorStatus, retryAfterSeconds } from '../http/error-body.js'
import { toKelixError } from '../http/error-handler.js'
import { installMultipart } from '../http/multipart.js'
import { installOpenApi } from './openapi.js'
import { RemoteImageFetcher } from '../http/remote-image.js'
import type { Metrics } from './metrics.js'
import { metricsRoute } from './metrics-route.js'
import { installRequestLog, requestId } from '../http/request-log.js'
import { installUnreadBodyDrain } from '../http/unread-body.js'
import { KelixError } from '../errors/kelix-error.js'

/** The part of the configuration the HTTP layer reads. */
export type AppConfig = Pick<
  ServerConfig,
  | 'logPrompts'
  | 'apiKeys'
  | 'authHealth'
  | 'authMetrics'
  | 'disablePlayground'
  | 'maxBodyBytes'
  | 'maxImagesPerRequest'
  | 'maxImageBytes'
  | 'maxPromptTokens'
  | 'maxTokensLimit'
  | 'maxChoices'
  | 'requestTimeoutMs'
  | 'remoteImages'
  | 'remoteImageHosts'
  | 'remoteImageTimeoutMs'
  | 'remoteImageMaxRedirects'
  | 'sseHeartbeatMs'
>

export interface AppOptions {
  /** A pino logger's options, or false. */
  logger: FastifyServerOptions['logger']
  engine: EngineClient
  model: ServedModel
  /** Overrides of the defaults (`loadServerConfig({})`). */
  config?: Partial<AppConfig>
  /** Default: "kelix-serve" and the model id. */
  systemFingerprint?: string
  /** Replaces the fetcher built from the config's remote image settings (tests: a local CA and resolver). */
  remoteImages?: RemoteImageSource
  /** Serves GET /metrics from this registry and records every HTTP response in it. */
  metrics?: Metrics
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Shutdown, step one: readiness goes false and new requests get 503; running ones go on. */
    startDraining(): void
  }
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const config: AppConfig = { ...loadServerConfig({}), ...options.config }
  const app = Fastify({
    logger: options.logger,
    bodyLimit: config.maxBodyBytes,
    genReqId: requestId,
    // request-log.ts writes the one line per request.
    logController: new LogController({ disableRequestLogging: true }),
    // While closing, the draining gate below answers 503 in the OpenAI shape.
    return503OnClosing: false,
  })
  let draining = false
  app.decorate('startDraining', () => {
    draining = true
  })

  app.setErrorHandler((err, request, reply) => {
    const error = toKelixError(err)
    request.stats.errorCode = error.code
    if (errorStatus(error) >= 500) request.log.error({ err }, 'request failed')
    const retryAfter = retryAfterSeconds(error)
    if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter))
    void reply.code(errorStatus(error)).send(errorBody(error))
  })
  app.setNotFoundHandler((request, reply) => {
    const error = new KelixError('not_found', `No route for ${request.method} ${request.url.split('?')[0]}`)
    void reply.code(errorStatus(error)).send(errorBody(error))
  })

  // JSON and multipart only: anything else is a 415, not a string for the schema to reject.
  app.removeContentTypeParser('text/plain')
  installRequestLog(app, options.metrics)
  installUnreadBodyDrain(app)
  installAuth(app, config)
  app.addHook('onRequest', async (request, reply) => {
    if (!draining || request.url.startsWith('/health/') || request.url === '/metrics') return
    void reply.header('connection', 'close')
    throw new KelixError('draining', 'The server is shutting down; retry on another replica.', { retryAfterSeconds: 1 })
  })
  const multipartLimits = {
    maxFiles: config.maxImagesPerRequest,
    maxFileBytes: config.maxImageBytes,
    maxFieldBytes: config.maxBodyBytes,
  }
  await installMultipart(app, multipartLimits)
  installOpenApi(
    app,
    { title: 'Kelix Serve', version: '0.1.0' },
    { authEnabled: config.apiKeys.length > 0, isOpen: (path) => isOpenPath(path, config) },
  )

  const { engine, model } = options
  const remoteImages = options.remoteImages ?? remoteFetcher(config)
  const fingerprinted = {
    id: model.id,
    aliases: model.aliases,
    systemFingerprint: options.systemFingerprint ?? `kelix-serve-${model.id}`,
  }
  await app.register(healthRoutes, {
    health: { ready: () => !draining && engine.ready(), executionProvider: () => engine.executionProvider },
  })
  await app.register(modelRoutes, { model })
  if (options.metrics !== undefined) await app.register(metricsRoute, { registry: options.metrics.registry })
  await app.register(chatCompletionRoutes, {
    engine,
    model: fingerprinted,
    limits: config,
    multipart: multipartLimits,
    remoteImages,
    sseHeartbeatMs: config.sseHeartbeatMs,
    logPrompts: config.logPrompts,
  })
  if (!config.disablePlayground) await app.register(playgroundRoute)
  await app.register(responseRoutes, {
    engine,
    model: { id: model.id, aliases: model.aliases },
    limits: config,
    remoteImages,
    sseHeartbeatMs: config.sseHeartbeatMs,
  })
  await app.register(tokenizeRoutes, {
    engine,
    model: { id: model.id, aliases: model.aliases },
    remoteImages,
    maxImagesPerRequest: config.maxImagesPerRequest,
    maxImageBytes: config.maxImageBytes,
  })
  await app.register(completionRoutes, {
    engine,
    model: fingerprinted,
    limits: config,
    sseHeartbeatMs: config.sseHeartbeatMs,
  })
  await app.register(imageGenerationRoutes, {
    engine,
    model: { id: model.id, aliases: model.aliases },
    maxImages: config.maxChoices,
    sseHeartbeatMs: config.sseHeartbeatMs,
    requestTimeoutMs: config.requestTimeoutMs,
  })
  return app
}

function remoteFetcher(config: AppConfig): RemoteImageSource | undefined {
  if (!config.remoteImages) return undefined
  return new RemoteImageFetcher({
    allowedHosts: config.remoteImageHosts,
    timeoutMs: config.remoteImageTimeoutMs,
    maxBytes: config.maxImageBytes,
    maxRedirects: config.remoteImageMaxRedirects,
  })
}
