/**
 * `POST /v1/responses`: the Responses API as the current OpenAI SDKs call it,
 * for text and image input, with `text.format` and streaming; nothing is
 * stored (`store: false` only). Everything that can fail because of the
 * request fails before the 200 headers, as in chat completions.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { EngineClient } from '../batching/client-types.js'
import { SseWriter } from '../http/sse.js'
import { strictValidatorCompiler } from '../http/validation.js'
import type { RemoteImageSource } from '../http/remote-image.js'
import { checkModel, promptEstimate, resolveMessages, type ModelNames, type RequestLimits } from './chat/request.js'
import { errorSchema } from './chat/schema.js'
import { clientGoneSignal, engineCall, noteModel, recordTimings } from './generation-call.js'
import { collectResponse, responseMeta, responseObject, writeResponseStream } from './responses/output.js'
import { checkResponseRequest, toMessageBodies, toResponseGenerateRequest } from './responses/request.js'
import { responseObjectSchema, responseRequestSchema, type ResponseRequestBody } from './responses/schema.js'

export interface ResponseRouteOptions {
  engine: EngineClient
  model: ModelNames
  limits: RequestLimits
  remoteImages: RemoteImageSource | undefined
  sseHeartbeatMs: number
}

export async function responseRoutes(app: FastifyInstance, opts: ResponseRouteOptions): Promise<void> {
  const { engine, model, limits } = opts
  app.post(
    '/v1/responses',
    {
      schema: {
        summary: 'Creates a model response (text and image input; nothing stored)',
        tags: ['responses'],
        body: responseRequestSchema,
        response: { 200: responseObjectSchema, '4XX': errorSchema, '5XX': errorSchema },
      },
      validatorCompiler: strictValidatorCompiler,
      preValidation: [noteModel],
    },
    async (request: FastifyRequest, reply: FastifyReply) => {
      const body = request.body as ResponseRequestBody
      checkModel(body.model, model)
      checkResponseRequest(body, limits)
      Object.assign(request.stats, { model: body.model, stream: body.stream === true, n: 1 })
      const bodies = toMessageBodies(body)
      const signal = clientGoneSignal(reply)
      const ticket = await engineCall('input', () => engine.reserve(promptEstimate(bodies, 0)))
      let generation
      try {
        const messages = await resolveMessages(
          bodies,
          { attachments: undefined, remote: opts.remoteImages, maxImageBytes: limits.maxImageBytes, signal },
          limits.maxImagesPerRequest,
        )
        generation = await engineCall('input', () =>
          engine.submit(toResponseGenerateRequest(body, messages, limits, engine.generationDefaults), {
            signal,
            ticket,
          }),
        )
      } catch (err) {
        ticket.release()
        throw err
      }
      request.stats.promptTokens = generation.promptTokens
      const meta = responseMeta(model.id)
      if (body.stream === true) {
        reply.hijack()
        const writer = new SseWriter(reply.raw, reply.getHeaders() as Record<string, string>, {
          heartbeatMs: opts.sseHeartbeatMs,
        })
        const outcome = await writeResponseStream(generation, writer, meta, body)
        recordTimings(request.stats, outcome)
        if (outcome.errorCode !== undefined) request.stats.errorCode = outcome.errorCode
        return reply
      }
      const collected = await collectResponse(generation, signal)
      if (collected === undefined) {
        generation.abort()
        reply.hijack()
        reply.raw.destroy()
        return reply
      }
      recordTimings(request.stats, collected)
      return responseObject(meta, body, collected.status, collected.text, collected.usage)
    },
  )
}
