/**
 * `POST /tokenize` and `POST /detokenize`, as vLLM offers them: how a prompt
 * is laid out before it is sent (completions-style `prompt`, or chat-style
 * `messages` through the template, images counted in positions), and ids back
 * to text. One id per position: a text token, or an image position's first
 * code (Kelix's image positions hold several).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { EngineClient } from '../batching/client-types.js'
import { strictValidatorCompiler } from '../http/validation.js'
import type { RemoteImageSource } from '../http/remote-image.js'
import { checkModel, resolveMessages, type ModelNames } from './chat/request.js'
import { chatRequestSchema, errorSchema, type MessageBody } from './chat/schema.js'
import { engineCall, noteModel } from './generation-call.js'

export interface TokenizeRouteOptions {
  engine: EngineClient
  model: ModelNames
  remoteImages: RemoteImageSource | undefined
  maxImagesPerRequest: number
  maxImageBytes: number
}

const ids = { type: 'array', items: { type: 'integer', minimum: 0 } } as const

const tokenizeBody = {
  oneOf: [
    {
      type: 'object',
      properties: { model: { type: 'string' }, prompt: { type: 'string' } },
      required: ['model', 'prompt'],
      additionalProperties: false,
    },
    {
      type: 'object',
      properties: {
        model: { type: 'string' },
        messages: chatRequestSchema.properties.messages,
        add_generation_prompt: { type: 'boolean' },
      },
      required: ['model', 'messages'],
      additionalProperties: false,
    },
  ],
} as const

const tokenizeResponse = {
  type: 'object',
  properties: {
    count: { type: 'integer' },
    max_model_len: { type: 'integer' },
    tokens: ids,
    image_positions: { type: 'integer' },
  },
  required: ['count', 'max_model_len', 'tokens', 'image_positions'],
} as const

type TokenizeBody =
  { model: string; prompt: string } | { model: string; messages: MessageBody[]; add_generation_prompt?: boolean }

export async function tokenizeRoutes(app: FastifyInstance, opts: TokenizeRouteOptions): Promise<void> {
  const { engine, model } = opts

  app.post(
    '/tokenize',
    {
      schema: {
        summary: 'Tokenizes a prompt or chat messages as the engine would lay them out',
        tags: ['tokenizer'],
        body: tokenizeBody,
        response: { 200: tokenizeResponse, '4XX': errorSchema, '5XX': errorSchema },
      },
      validatorCompiler: strictValidatorCompiler,
      preValidation: [noteModel],
    },
    async (request: FastifyRequest) => {
      const body = request.body as TokenizeBody
      checkModel(body.model, model)
      const input =
        'prompt' in body
          ? { prompt: { text: body.prompt } }
          : {
              messages: await resolveMessages(
                body.messages,
                {
                  attachments: undefined,
                  remote: opts.remoteImages,
                  maxImageBytes: opts.maxImageBytes,
                  signal: AbortSignal.timeout(60_000),
                },
                opts.maxImagesPerRequest,
              ),
              addGenerationPrompt: body.add_generation_prompt ?? true,
            }
      const tokenized = await engineCall('prompt' in body ? 'prompt' : 'messages', () => engine.tokenize(input))
      return {
        count: tokenized.ids.length,
        max_model_len: engine.maxContext,
        tokens: tokenized.ids,
        image_positions: tokenized.imagePositions,
      }
    },
  )

  app.post(
    '/detokenize',
    {
      schema: {
        summary: 'Turns text token ids back into text',
        tags: ['tokenizer'],
        body: {
          type: 'object',
          properties: { model: { type: 'string' }, tokens: ids },
          required: ['model', 'tokens'],
          additionalProperties: false,
        },
        response: {
          200: { type: 'object', properties: { prompt: { type: 'string' } }, required: ['prompt'] },
          '4XX': errorSchema,
          '5XX': errorSchema,
        },
      },
      validatorCompiler: strictValidatorCompiler,
      preValidation: [noteModel],
    },
    async (request: FastifyRequest) => {
      const body = request.body as { model: string; tokens: number[] }
      checkModel(body.model, model)
      if (body.tokens.length === 0) return { prompt: '' }
      return { prompt: await engineCall('tokens', () => engine.detokenize(body.tokens)) }
    },
  )
}
