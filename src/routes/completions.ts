/**
 * `POST /v1/completions`: the legacy completions API that evaluation
 * harnesses and the Gateway API Inference Extension use. Text prompts (no
 * chat template) or token ids, one generation per prompt; `echo` puts the
 * prompt before the answer, and with `logprobs` scores every prompt token
 * (`max_tokens: 0` scores the prompt alone). Everything that can fail because
 * of the request fails before the 200 headers, as in chat completions.
 */
import { randomBytes } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { EngineClient, Generation } from '../batching/client-types.js'
import { SseWriter } from '../http/sse.js'
import { strictValidatorCompiler } from '../http/validation.js'
import { checkModel, type ModelNames, type RequestLimits } from './chat/request.js'
import { errorSchema } from './chat/schema.js'
import { CompletionChoices } from './completions/choices.js'
import {
  collectCompletion,
  completionObject,
  writeCompletionStream,
  type CompletionMeta,
} from './completions/output.js'
import {
  checkCompletionRequest,
  plainPromptEstimate,
  promptsOf,
  toCompletionGenerateRequest,
} from './completions/request.js'
import {
  completionChunkSchema,
  completionRequestSchema,
  completionSchema,
  type CompletionRequestBody,
} from './completions/schema.js'
import { clientGoneSignal, engineCall, noteModel, recordTimings } from './generation-call.js'

export interface CompletionRouteOptions {
  engine: EngineClient
  model: ModelNames & { systemFingerprint: string }
  limits: RequestLimits
  sseHeartbeatMs: number
}

const routeSchema = {
  summary: 'Creates a completion for the given prompt (text or token ids, no chat template)',
  tags: ['completions'],
  body: completionRequestSchema,
  response: { 200: completionSchema, '4XX': errorSchema, '5XX': errorSchema },
}

export async function completionRoutes(app: FastifyInstance, opts: CompletionRouteOptions): Promise<void> {
  const { engine, model, limits } = opts

  /** One admitted generation per prompt; on any refusal the ones already admitted are aborted. */
  async function admit(body: CompletionRequestBody, signal: AbortSignal): Promise<Generation[]> {
    const generations: Generation[] = []
    try {
      for (const prompt of promptsOf(body)) {
        const ticket = await engineCall('prompt', () => engine.reserve(plainPromptEstimate(prompt)))
        try {
          generations.push(
            await engineCall('prompt', () =>
              engine.submit(toCompletionGenerateRequest(body, prompt, limits, engine.generationDefaults), {
                signal,
                ticket,
              }),
            ),
          )
        } catch (err) {
          ticket.release()
          throw err
        }
      }
    } catch (err) {
      for (const g of generations) g.abort()
      throw err
    }
    return generations
  }

  app.post(
    '/v1/completions',
    {
      schema: routeSchema,
      validatorCompiler: strictValidatorCompiler,
      preValidation: [noteModel],
      config: { eventStream: completionChunkSchema },
    },
    async (request: FastifyRequest, reply: FastifyReply) => {
      const body = request.body as CompletionRequestBody
      checkModel(body.model, model)
      const prompts = promptsOf(body)
      checkCompletionRequest(body, prompts, limits)
      Object.assign(request.stats, { model: body.model, stream: body.stream === true, n: body.n ?? 1 })
      const meta: CompletionMeta = {
        id: `cmpl-${randomBytes(16).toString('hex')}`,
        created: Math.floor(Date.now() / 1000),
        model: model.id,
        systemFingerprint: model.systemFingerprint,
      }
      const signal = clientGoneSignal(reply)
      const generations = await admit(body, signal)
      request.stats.promptTokens = generations.reduce((n, g) => n + g.promptTokens, 0)
      const choices = new CompletionChoices(
        prompts.length,
        body.n ?? 1,
        body.logprobs !== undefined && body.logprobs !== null,
      )
      if (body.stream === true) {
        reply.hijack()
        const writer = new SseWriter(reply.raw, reply.getHeaders() as Record<string, string>, {
          heartbeatMs: opts.sseHeartbeatMs,
        })
        const outcome = await writeCompletionStream(
          generations,
          choices,
          writer,
          meta,
          body.stream_options?.include_usage === true,
        )
        recordTimings(request.stats, outcome)
        if (outcome.errorCode !== undefined) request.stats.errorCode = outcome.errorCode
        return reply
      }
      const collected = await collectCompletion(generations, choices, signal)
      if (collected === undefined) {
        // The client left; there is no one to answer.
        reply.hijack()
        reply.raw.destroy()
        return reply
      }
      recordTimings(request.stats, collected)
      return completionObject(meta, collected.choices, collected.usage)
    },
  )
}
