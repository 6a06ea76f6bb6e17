/**
 * `POST /v1/images/generations`, in the OpenAI Images shape. The prompt goes
 * through the chat template; the model writes the image grid token by token
 * (sharing the batch with chat), then the DiT and VAE paint it.
 *
 * Everything that can fail because of the request (schema, model, size, n,
 * admission) fails before the 200 headers. With `stream: true` the response is
 * server-sent events: `image_generation.progress` (token phase, then denoise
 * step k of N), `partial_images` previews per image as
 * `image_generation.partial_image` (the sampler's current estimate, decoded),
 * one `image_generation.completed` per image, then `[DONE]`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import {
  type EngineClient,
  type ImageGeneration,
  type ImageRequest,
  type ImageUsage,
} from '../batching/client-types.js'
import { errorBody } from '../http/error-body.js'
import { clientGoneSignal, engineCall } from './generation-call.js'
import { checkAtMost } from './server-limits.js'
import { SseWriter } from '../http/sse.js'
import { strictValidatorCompiler } from '../http/validation.js'
import { checkModel, OPENAI_SAMPLING_DEFAULTS, toSamplingParams, type ModelNames } from './chat/request.js'
import { errorSchema } from './chat/schema.js'
import { KelixError } from '../errors/kelix-error.js'

export interface ImageRouteOptions {
  engine: EngineClient
  model: ModelNames
  /** Largest `n`. */
  maxImages: number
  sseHeartbeatMs: number
  requestTimeoutMs: number | undefined
}

interface ImageBody {
  prompt: string
  model?: string
  n?: number
  size?: string
  response_format?: 'b64_json' | 'url'
  output_format?: 'png'
  quality?: string
  style?: string
  seed?: number
  user?: string
  stream?: boolean
  partial_images?: number
  background?: 'auto' | 'opaque'
  temperature?: number
  top_p?: number
  top_k?: number
  guidance_scale?: number
}

const bodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['prompt'],
  properties: {
    prompt: { type: 'string', minLength: 1, maxLength: 32_000 },
    model: { type: 'string' },
    n: { type: 'integer', minimum: 1 },
    size: { type: 'string' },
    response_format: { type: 'string', enum: ['b64_json', 'url'] },
    output_format: { type: 'string', enum: ['png'] },
    quality: { type: 'string', enum: ['auto', 'standard', 'hd', 'low', 'medium', 'high'] },
    style: { type: 'string', enum: ['vivid', 'natural'] },
    seed: { type: 'integer', minimum: 0, maximum: 2 ** 31 - 1 },
    user: { type: 'string' },
    stream: { type: 'boolean' },
    partial_images: { type: 'integer', minimum: 0, maximum: 3 },
    // The model paints opaque images only; 'transparent' is refused by the enum.
    background: { type: 'string', enum: ['auto', 'opaque'] },
    temperature: { type: 'number', minimum: 0, maximum: 2 },
    top_p: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
    top_k: { type: 'integer', minimum: 0 },
    // Not in OpenAI's API: the denoiser's classifier-free guidance (diffusers' name); 1 is one DiT pass per step.
    guidance_scale: { type: 'number', minimum: 0, maximum: 20 },
  },
}

const responseSchema = {
  type: 'object',
  properties: {
    created: { type: 'integer' },
    data: {
      type: 'array',
      items: { type: 'object', properties: { b64_json: { type: 'string' }, revised_prompt: { type: 'string' } } },
    },
    usage: {
      type: 'object',
      properties: {
        input_tokens: { type: 'integer' },
        output_tokens: { type: 'integer' },
        total_tokens: { type: 'integer' },
        input_tokens_details: {
          type: 'object',
          properties: { text_tokens: { type: 'integer' }, image_tokens: { type: 'integer' } },
        },
      },
    },
  },
}

/** The OpenAI Images usage object. */
function toImagesUsage(usage: ImageUsage) {
  const { promptTokens, imageTokens, totalTokens } = usage
  return {
    input_tokens: promptTokens,
    output_tokens: imageTokens,
    total_tokens: totalTokens,
    input_tokens_details: { text_tokens: promptTokens, image_tokens: 0 },
  }
}

export async function imageGenerationRoutes(app: FastifyInstance, opts: ImageRouteOptions): Promise<void> {
  const { engine } = opts
  const capabilities = () => {
    const images = engine.imageCapabilities
    if (images === undefined)
      throw new KelixError(
        'model_capability_missing',
        `The model '${opts.model.id}' does not generate images: its export has no image decoder (dit.onnx, vae_decoder.onnx).`,
        { param: 'model' },
      )
    return images
  }
  const supportedSize = () => `${capabilities().size}x${capabilities().size}`

  function toImageRequest(body: ImageBody): ImageRequest {
    if (body.model !== undefined) checkModel(body.model, opts.model)
    capabilities()
    if (body.prompt.trim() === '')
      throw new KelixError('invalid_request_error', 'The prompt is empty.', { param: 'prompt' })
    const size = body.size ?? 'auto'
    if (size !== 'auto' && size !== supportedSize()) {
      throw new KelixError(
        'invalid_request_error',
        `The size '${size}' is not supported. This model generates ${supportedSize()} (or 'auto').`,
        { param: 'size' },
      )
    }
    if (body.response_format === 'url')
      throw new KelixError(
        'invalid_request_error',
        "Only response_format 'b64_json' is supported: this server stores no images.",
        { param: 'response_format' },
      )
    const n = body.n ?? 1
    checkAtMost('n', n, opts.maxImages)
    // The schema admits no penalties or logit bias (meaningless over image codes): only the sampling shape is the caller's.
    // The token phase samples at OpenAI's defaults (temperature 1) unless asked: the model's generation defaults are for text.
    const sampling = toSamplingParams(
      { temperature: body.temperature, top_p: body.top_p, top_k: body.top_k, seed: body.seed },
      OPENAI_SAMPLING_DEFAULTS,
    )
    // Partial images only exist in a stream, as with OpenAI.
    const partialImages = body.stream === true ? (body.partial_images ?? 0) : 0
    return {
      prompt: body.prompt,
      n,
      sampling,
      partialImages,
      ...(body.guidance_scale === undefined ? {} : { guidance: body.guidance_scale }),
      ...(opts.requestTimeoutMs === undefined ? {} : { timeoutMs: opts.requestTimeoutMs }),
    }
  }

  async function start(request: ImageRequest, reply: FastifyReply): Promise<ImageGeneration> {
    return engineCall('prompt', () => engine.generateImages(request, { signal: clientGoneSignal(reply) }))
  }

  app.post(
    '/v1/images/generations',
    {
      schema: {
        summary: 'Creates images from a text prompt',
        tags: ['images'],
        body: bodySchema,
        response: { 200: responseSchema, '4XX': errorSchema, '5XX': errorSchema },
      },
      validatorCompiler: strictValidatorCompiler,
    },
    async (request: FastifyRequest, reply: FastifyReply) => {
      const body = request.body as ImageBody
      Object.assign(request.stats, { model: body.model ?? opts.model.id, stream: body.stream === true, n: body.n ?? 1 })
      const generation = await start(toImageRequest(body), reply)
      request.stats.promptTokens = generation.promptTokens
      const created = Math.floor(Date.now() / 1000)
      if (body.stream === true) {
        reply.hijack()
        await streamImages(
          new SseWriter(reply.raw, reply.getHeaders() as Record<string, string>, { heartbeatMs: opts.sseHeartbeatMs }),
          generation,
          created,
          supportedSize(),
        )
        return reply
      }
      const images: string[] = []
      for await (const event of generation.events) {
        if (event.type === 'image') images[event.index] = Buffer.from(event.png).toString('base64')
        else if (event.type === 'error') throw event.error
        else if (event.type === 'done')
          return {
            created,
            data: images.map((b64_json) => ({ b64_json, revised_prompt: body.prompt })),
            usage: toImagesUsage(event.usage),
          }
      }
      // The client left before the images were done.
      reply.hijack()
      reply.raw.destroy()
      return reply
    },
  )
}

async function streamImages(
  writer: SseWriter,
  generation: ImageGeneration,
  created: number,
  size: string,
): Promise<void> {
  const common = { created_at: created, size, quality: 'auto', background: 'opaque', output_format: 'png' }
  // OpenAI's completed event carries the usage; the request's is known at admission.
  const usage = toImagesUsage(generation.usage)
  for await (const event of generation.events) {
    if (writer.closed) {
      generation.abort()
      break
    }
    if (event.type === 'progress') {
      await writer.send({
        type: 'image_generation.progress',
        image_index: event.index,
        phase: event.phase,
        step: event.step,
        total: event.total,
      })
    } else if (event.type === 'partial') {
      await writer.send({
        type: 'image_generation.partial_image',
        image_index: event.index,
        partial_image_index: event.partialIndex,
        b64_json: Buffer.from(event.png).toString('base64'),
        ...common,
      })
    } else if (event.type === 'image') {
      await writer.send({
        type: 'image_generation.completed',
        image_index: event.index,
        b64_json: Buffer.from(event.png).toString('base64'),
        ...common,
        usage,
      })
    } else if (event.type === 'done') {
      await writer.send({ type: 'image_generation.usage', usage: toImagesUsage(event.usage) })
    } else {
      await writer.send(errorBody(event.error))
    }
  }
  await writer.send('[DONE]')
  writer.end()
}
