/**
 * `POST /v1/chat/completions`, JSON or multipart. Everything that can fail
 * because of the request happens before the 200 headers: schema, model,
 * limits, images (decoded, downloaded), then `engine.submit` (admission,
 * prompt, context). Only an engine failure after that reaches a stream, as a
 * final error event.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ChatMessage, EngineClient, Generation } from '../batching/client-types.js'
import { attachmentsOf, multipartBodyReader, type MultipartLimits } from '../http/multipart.js'
import { SseWriter } from '../http/sse.js'
import { strictValidatorCompiler } from '../http/validation.js'
import { clientGoneSignal, engineCall, noteModel, recordTimings } from './generation-call.js'
import type { RemoteImageSource } from '../http/remote-image.js'
import { collectChoices, writeStream } from './chat/output.js'
import {
  checkModel,
  checkRequest,
  promptEstimate,
  resolveMessages,
  toGenerateRequest,
  type ModelNames,
  type RequestLimits,
} from './chat/request.js'
import { ChunkFactory, chatCompletion, completionMeta, type CompletionMeta } from './chat/response.js'
import { toolCalling, type ToolCalling } from './chat/tools.js'
import {
  chatCompletionChunkSchema,
  chatCompletionSchema,
  chatRequestSchema,
  errorSchema,
  type ChatRequestBody,
} from './chat/schema.js'
import { KelixError } from '../errors/kelix-error.js'

export interface ChatRouteOptions {
  engine: EngineClient
  model: ModelNames & { systemFingerprint: string }
  limits: RequestLimits
  multipart: MultipartLimits
  /** Undefined: remote image URLs are refused. */
  remoteImages: RemoteImageSource | undefined
  sseHeartbeatMs: number
  /** Put the messages (images as byte counts) on the request's log line. */
  logPrompts: boolean
}

const routeSchema = {
  summary: 'Creates a model response for the given chat conversation',
  tags: ['chat'],
  body: chatRequestSchema,
  response: { 200: chatCompletionSchema, '4XX': errorSchema, '5XX': errorSchema },
}

/** Messages for the log: text as is, images as their size. */
function loggable(messages: readonly ChatMessage[]): unknown {
  return messages.map((m) => ({
    role: m.role,
    content:
      typeof m.content === 'string'
        ? m.content
        : m.content.map((p) => (p.type === 'text' ? p.text : { image_bytes: p.image.bytes.length })),
  }))
}

export async function chatCompletionRoutes(app: FastifyInstance, opts: ChatRouteOptions): Promise<void> {
  const { engine, model, limits } = opts

  /** Everything that can fail because of the request, up to an admitted generation. */
  async function admit(
    request: FastifyRequest,
    body: ChatRequestBody,
    calling: ToolCalling | undefined,
    signal: AbortSignal,
  ): Promise<Generation> {
    const attachments = attachmentsOf(request)
    // The queue place comes first, so an overloaded server refuses before downloading any image.
    const ticket = await engineCall('messages', () =>
      engine.reserve(promptEstimate(body.messages, attachments?.size ?? 0)),
    )
    let generation: Generation
    try {
      const sources = { attachments, remote: opts.remoteImages, maxImageBytes: limits.maxImageBytes, signal }
      const messages = await resolveMessages(body.messages, sources, limits.maxImagesPerRequest)
      if (opts.logPrompts) request.stats.messages = loggable(messages)
      // The engine aborts the generation when `signal` does (the client left).
      generation = await engineCall('messages', () =>
        engine.submit(toGenerateRequest(body, messages, limits, engine.generationDefaults, calling), {
          signal,
          ticket,
        }),
      ).catch((err: unknown) => {
        // With tool calling the grammar is the tools' (tools.ts): name them, not response_format.
        if (calling !== undefined && err instanceof KelixError && err.fields.param === 'response_format')
          throw new KelixError(err.code, `Invalid 'tools': ${err.message}`, { param: 'tools' })
        throw err
      })
    } catch (err) {
      ticket.release()
      throw err
    }
    Object.assign(request.stats, { promptTokens: generation.promptTokens, imagePositions: generation.imagePositions })
    return generation
  }

  async function stream(
    request: FastifyRequest,
    reply: FastifyReply,
    body: ChatRequestBody,
    generation: Generation,
    meta: CompletionMeta,
    calling: ToolCalling | undefined,
  ): Promise<void> {
    const includeUsage = body.stream_options?.include_usage === true
    const chunks = new ChunkFactory(meta, includeUsage)
    reply.hijack()
    const writer = new SseWriter(reply.raw, reply.getHeaders() as Record<string, string>, {
      heartbeatMs: opts.sseHeartbeatMs,
    })
    const outcome = await writeStream(generation, body.n ?? 1, writer, chunks, includeUsage, calling)
    recordTimings(request.stats, outcome)
    if (outcome.errorCode !== undefined) request.stats.errorCode = outcome.errorCode
  }

  app.post(
    '/v1/chat/completions',
    {
      schema: routeSchema,
      validatorCompiler: strictValidatorCompiler,
      preValidation: [multipartBodyReader(opts.multipart), noteModel],
      config: { multipart: true, eventStream: chatCompletionChunkSchema },
    },
    async (request: FastifyRequest, reply: FastifyReply) => {
      const body = request.body as ChatRequestBody
      Object.assign(request.stats, { model: body.model, stream: body.stream === true, n: body.n ?? 1 })
      const meta = completionMeta(model.id, model.systemFingerprint)
      checkModel(body.model, model)
      checkRequest(body, limits)
      const calling = toolCalling(body)
      const signal = clientGoneSignal(reply)
      const generation = await admit(request, body, calling, signal)
      if (body.stream === true) {
        await stream(request, reply, body, generation, meta, calling)
        return reply
      }
      const collected = await collectChoices(generation, body.n ?? 1, body.logprobs === true, signal)
      if (collected === undefined) {
        // The client left; there is no one to answer.
        reply.hijack()
        reply.raw.destroy()
        return reply
      }
      recordTimings(request.stats, collected)
      return chatCompletion(meta, collected.choices, collected.usage, calling)
    },
  )
}
