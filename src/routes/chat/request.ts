/**
 * A validated chat request → the engine's `GenerateRequest`: the model check,
 * the checks JSON Schema cannot express (limits from the configuration, fields
 * that depend on each other), sampling defaults, and messages with their
 * images resolved to bytes.
 */
import type { ChatMessage, ContentPart, GenerateRequest, ResponseFormat, SamplingParams } from '../../batching/client-types.js'
import { ApiError } from '../../http/api-errors.js'
import { collectImageRefs, resolveImage, unreferencedAttachments, type ImageRef, type ImageSources } from './images.js'
import type { ChatRequestBody, MessageBody } from './schema.js'
import { assistantText, toolResultText, type ToolCalling } from './tools.js'

/** The served model and the other ids that name it. */
export interface ModelNames {
  id: string
  aliases: readonly string[]
}

/** Per-request limits from the configuration. */
export interface RequestLimits {
  maxChoices: number
  maxImagesPerRequest: number
  maxImageBytes: number
  /** Largest max_tokens; undefined: the context. */
  maxTokensLimit: number | undefined
  /** Most prompt positions; undefined: the context. */
  maxPromptTokens: number | undefined
  requestTimeoutMs: number | undefined
}

/** 404 unless `requested` is the served id or an alias. */
export function checkModel(requested: string, model: ModelNames): void {
  if (requested === model.id || model.aliases.includes(requested)) return
  throw new ApiError('model_not_found', `The model '${requested}' does not exist. This server serves '${model.id}'.`, 'model')
}

/** Max tokens as asked for (`max_completion_tokens` wins over the deprecated `max_tokens`), and its param. */
function requestedMaxTokens(body: ChatRequestBody): { value: number; param: string } | undefined {
  if (body.max_completion_tokens !== undefined) return { value: body.max_completion_tokens, param: 'max_completion_tokens' }
  if (body.max_tokens !== undefined) return { value: body.max_tokens, param: 'max_tokens' }
  return undefined
}

/** The checks between fields and against limits; throws the first failure. */
export function checkRequest(body: ChatRequestBody, limits: RequestLimits, maxContext: number): void {
  if (body.stream_options !== undefined && body.stream !== true) {
    throw new ApiError('invalid_value', "Invalid 'stream_options': only allowed when 'stream' is true.", 'stream_options')
  }
  if (body.top_logprobs !== undefined && body.logprobs !== true) {
    throw new ApiError('invalid_value', "Invalid 'top_logprobs': only allowed when 'logprobs' is true.", 'top_logprobs')
  }
  body.messages.forEach((m, i) => {
    if (m.role === 'assistant' && (m.content === undefined || m.content === null) && m.tool_calls === undefined) {
      throw new ApiError('missing_required_parameter', `Missing required parameter: 'messages[${i}].content' (an assistant message needs content or tool_calls).`, `messages[${i}].content`)
    }
  })
  if ((body.n ?? 1) > limits.maxChoices) {
    throw new ApiError('invalid_value', `Invalid 'n': expected a value <= ${limits.maxChoices} on this server, but got ${body.n} instead.`, 'n')
  }
  const max = requestedMaxTokens(body)
  if (max === undefined) return
  if (limits.maxTokensLimit !== undefined && max.value > limits.maxTokensLimit) {
    throw new ApiError('invalid_value', `Invalid '${max.param}': expected a value <= ${limits.maxTokensLimit} on this server, but got ${max.value} instead.`, max.param)
  }
  if (max.value >= maxContext) {
    throw new ApiError(
      'context_length_exceeded',
      `This model's maximum context length is ${maxContext} tokens. However, you requested ${max.value} tokens for the completion alone (${max.param}), which leaves no room for the messages. Please reduce ${max.param}.`,
      'messages',
    )
  }
}

/** OpenAI fields → the engine's sampling controls, with OpenAI's defaults. */
/** The request fields sampling reads; the images route sends a subset of them. */
export type SamplingFields = Pick<
  ChatRequestBody,
  'temperature' | 'top_p' | 'top_k' | 'min_p' | 'presence_penalty' | 'frequency_penalty' | 'repetition_penalty' | 'logit_bias' | 'seed' | 'logprobs' | 'top_logprobs'
>

export function toSamplingParams(body: SamplingFields): SamplingParams {
  return {
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    topK: body.top_k === undefined || body.top_k < 0 ? 0 : body.top_k,
    minP: body.min_p ?? 0,
    presencePenalty: body.presence_penalty ?? 0,
    frequencyPenalty: body.frequency_penalty ?? 0,
    repetitionPenalty: body.repetition_penalty ?? 1,
    logitBias: new Map(Object.entries(body.logit_bias ?? {}).map(([id, bias]) => [Number(id), bias])),
    seed: body.seed,
    topLogprobs: body.logprobs === true ? (body.top_logprobs ?? 0) : undefined,
  }
}

export function toStopList(stop: ChatRequestBody['stop']): string[] {
  if (stop === undefined || stop === null) return []
  return typeof stop === 'string' ? [stop] : [...stop]
}

/** The size admission counts before any image is fetched: text bytes and image parts (attachments included). */
export function promptEstimate(messages: readonly MessageBody[], attachments: number): { textBytes: number; images: number } {
  let textBytes = 0
  let images = attachments
  for (const m of messages) {
    if (m.role === 'assistant') textBytes += assistantText(m).length
    else if (typeof m.content === 'string') textBytes += m.content.length
    else if (Array.isArray(m.content)) {
      for (const part of m.content) {
        if (part.type === 'text') textBytes += part.text.length
        else images++
      }
    }
  }
  return { textBytes, images }
}

/** The GenerateRequest for a checked body whose messages are already resolved. */
export function toGenerateRequest(body: ChatRequestBody, messages: ChatMessage[], limits: RequestLimits, calling?: ToolCalling): GenerateRequest {
  const requested = requestedMaxTokens(body)?.value
  const request: GenerateRequest = {
    messages,
    n: body.n ?? 1,
    sampling: toSamplingParams(body),
    stop: toStopList(body.stop),
  }
  // Without max_tokens: the rest of the context (OpenAI's rule), capped by the server's limit.
  if (requested !== undefined) request.maxNewTokens = requested
  else if (limits.maxTokensLimit !== undefined) request.maxNewTokensLimit = limits.maxTokensLimit
  if (limits.maxPromptTokens !== undefined) request.maxPromptTokens = limits.maxPromptTokens
  if (limits.requestTimeoutMs !== undefined) request.timeoutMs = limits.requestTimeoutMs
  const format = calling?.format ?? toResponseFormat(body.response_format)
  if (format !== undefined) request.responseFormat = format
  return request
}

/**
 * The engine's response format: `text` is no constraint; a `json_schema`
 * without `schema` is any JSON value's schema `{}` (OpenAI accepts it so).
 */
function toResponseFormat(format: ChatRequestBody['response_format']): ResponseFormat | undefined {
  if (format === undefined || format.type === 'text') return undefined
  if (format.type === 'json_object') return { type: 'json_object' }
  return { type: 'json_schema', schema: format.json_schema.schema ?? {}, strict: format.json_schema.strict === true }
}

/**
 * The request's messages with every image as bytes: image parts in place,
 * unreferenced multipart files appended to the last user message. At most
 * `maxImagesPerRequest` images, counted before any is fetched.
 */
export async function resolveMessages(messages: readonly MessageBody[], sources: ImageSources, maxImages: number): Promise<ChatMessage[]> {
  const refs = collectImageRefs(messages)
  const extra = unreferencedAttachments(refs, sources.attachments)
  const count = refs.length + extra.length
  if (count > maxImages) {
    throw new ApiError('too_many_images', `The request has ${count} images; this server accepts at most ${maxImages} per request.`, 'messages')
  }
  const bytes = await resolveAll(refs, sources)
  const byPart = new Map(refs.map((ref, i) => [partKey(ref), bytes[i]!]))
  const resolved = messages.map((m, i) => toChatMessage(m, i, byPart))
  if (extra.length > 0) appendAttachments(resolved, extra.map((name) => sources.attachments!.get(name)!.bytes))
  return resolved
}

/** Every image, concurrently; the first failure stops the downloads still running. */
async function resolveAll(refs: readonly ImageRef[], sources: ImageSources): Promise<Uint8Array[]> {
  const failed = new AbortController()
  const shared = { ...sources, signal: AbortSignal.any([sources.signal, failed.signal]) }
  try {
    return await Promise.all(refs.map((ref) => resolveImage(ref, shared)))
  } catch (err) {
    failed.abort()
    throw err
  }
}

const partKey = (ref: Pick<ImageRef, 'messageIndex' | 'partIndex'>) => `${ref.messageIndex}/${ref.partIndex}`

function toChatMessage(message: MessageBody, messageIndex: number, images: ReadonlyMap<string, Uint8Array>): ChatMessage {
  if (message.role === 'assistant') return { role: 'assistant', content: assistantText(message) }
  if (message.role === 'tool') return { role: 'user', content: toolResultText(message) }
  const role = message.role === 'developer' ? 'system' : message.role
  if (typeof message.content === 'string') return { role, content: message.content }
  const content = message.content.map((part, partIndex): ContentPart => {
    if (part.type === 'text') return { type: 'text', text: part.text }
    const bytes = images.get(partKey({ messageIndex, partIndex }))!
    return { type: 'image', image: { bytes, detail: part.image_url.detail ?? 'auto' } }
  })
  return { role, content }
}

function appendAttachments(messages: ChatMessage[], files: Uint8Array[]): void {
  const last = messages.findLastIndex((m) => m.role === 'user')
  const target = messages[last]
  if (target === undefined) {
    throw new ApiError('invalid_request_error', 'The request has file parts but no user message to attach them to.', 'messages')
  }
  const parts: ContentPart[] = typeof target.content === 'string' ? [{ type: 'text', text: target.content }] : [...target.content]
  for (const bytes of files) parts.push({ type: 'image', image: { bytes, detail: 'auto' } })
  messages[last] = { role: target.role, content: parts }
}
