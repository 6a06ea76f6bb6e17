/**
 * A validated chat request → the engine's `GenerateRequest`: the model check,
 * the checks JSON Schema cannot express (limits from the configuration, fields
 * that depend on each other), sampling defaults, and messages with their
 * images resolved to bytes.
 */
import type {
  ChatMessage,
  ContentPart,
  GenerateRequest,
  GenerationDefaults,
  ResponseFormat,
  SamplingParams,
} from '../../batching/client-types.js'
import { collectImageRefs, resolveImage, unreferencedAttachments, type ImageRef, type ImageSources } from './images.js'
import type { ChatRequestBody, MessageBody } from './schema.js'
import { assistantText, toolResultText, type ToolCalling } from './tools.js'
import { KelixError } from '../../errors/kelix-error.js'
import { checkAtMost } from '../server-limits.js'

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
  throw new KelixError(
    'model_not_found',
    `The model '${requested}' does not exist. This server serves '${model.id}'.`,
    { param: 'model' },
  )
}

/** Max tokens as asked for (`max_completion_tokens` wins over the deprecated `max_tokens`), and its param. */
function requestedMaxTokens(body: ChatRequestBody): { value: number; param: string } | undefined {
  if (body.max_completion_tokens !== undefined)
    return { value: body.max_completion_tokens, param: 'max_completion_tokens' }
  if (body.max_tokens !== undefined) return { value: body.max_tokens, param: 'max_tokens' }
  return undefined
}

/**
 * The checks between fields and against limits; throws the first failure.
 * Whether the prompt and max tokens fit the context is the engine's to say
 * (src/engine/context-length.ts): only it knows the prompt's length.
 */
export function checkRequest(body: ChatRequestBody, limits: RequestLimits): void {
  if (body.stream_options !== undefined && body.stream !== true) {
    throw new KelixError('invalid_value', "Invalid 'stream_options': only allowed when 'stream' is true.", {
      param: 'stream_options',
    })
  }
  if (body.top_logprobs !== undefined && body.logprobs !== true) {
    throw new KelixError('invalid_value', "Invalid 'top_logprobs': only allowed when 'logprobs' is true.", {
      param: 'top_logprobs',
    })
  }
  body.messages.forEach((m, i) => {
    if (m.role === 'assistant' && (m.content === undefined || m.content === null) && m.tool_calls === undefined) {
      throw new KelixError(
        'missing_required_parameter',
        `Missing required parameter: 'messages[${i}].content' (an assistant message needs content or tool_calls).`,
        { param: `messages[${i}].content` },
      )
    }
  })
  checkAtMost('n', body.n ?? 1, limits.maxChoices)
  const max = requestedMaxTokens(body)
  if (max === undefined) return
  if (limits.maxTokensLimit !== undefined) checkAtMost(max.param, max.value, limits.maxTokensLimit)
}

/** The request fields sampling reads; the images route sends a subset of them. */
export type SamplingFields = Pick<
  ChatRequestBody,
  | 'temperature'
  | 'top_p'
  | 'top_k'
  | 'min_p'
  | 'presence_penalty'
  | 'frequency_penalty'
  | 'repetition_penalty'
  | 'logit_bias'
  | 'seed'
  | 'logprobs'
  | 'top_logprobs'
>

/** What an omitted temperature, top_p or top_k becomes. */
export type SamplingDefaults = Pick<GenerationDefaults, 'temperature' | 'topP' | 'topK'>

/** OpenAI's own defaults (temperature 1, no top-p or top-k filter): the image token phase's. */
export const OPENAI_SAMPLING_DEFAULTS: SamplingDefaults = { temperature: 1, topP: 1, topK: 0 }

/** OpenAI fields → the engine's sampling controls; an omitted temperature, top_p or top_k takes `defaults` (a text request: the model's generation defaults). */
export function toSamplingParams(body: SamplingFields, defaults: SamplingDefaults): SamplingParams {
  return {
    temperature: body.temperature ?? defaults.temperature,
    topP: body.top_p ?? defaults.topP,
    topK: body.top_k === undefined ? defaults.topK : body.top_k < 0 ? 0 : body.top_k,
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
export function promptEstimate(
  messages: readonly MessageBody[],
  attachments: number,
): { textBytes: number; images: number } {
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

/** The GenerateRequest for a checked body whose messages are already resolved; what it leaves out takes the model's `defaults`. */
export function toGenerateRequest(
  body: ChatRequestBody,
  messages: ChatMessage[],
  limits: RequestLimits,
  defaults: GenerationDefaults,
  calling?: ToolCalling,
): GenerateRequest {
  const requested = requestedMaxTokens(body)?.value
  const request: GenerateRequest = {
    messages,
    n: body.n ?? 1,
    sampling: toSamplingParams(body, defaults),
    stop: toStopList(body.stop),
  }
  if (requested !== undefined) request.maxNewTokens = requested
  else request.maxNewTokensLimit = defaultMaxTokensCap(limits, defaults)
  if (limits.maxPromptTokens !== undefined) request.maxPromptTokens = limits.maxPromptTokens
  if (limits.requestTimeoutMs !== undefined) request.timeoutMs = limits.requestTimeoutMs
  const format = calling?.format ?? toResponseFormat(body.response_format)
  if (format !== undefined) request.responseFormat = format
  return request
}

/** Without max tokens a request gets the rest of the context (OpenAI's rule), capped by the model's default and the server's limit. */
export function defaultMaxTokensCap(
  limits: Pick<RequestLimits, 'maxTokensLimit'>,
  defaults: Pick<GenerationDefaults, 'maxNewTokens'>,
): number {
  return Math.min(defaults.maxNewTokens, limits.maxTokensLimit ?? Number.POSITIVE_INFINITY)
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
export async function resolveMessages(
  messages: readonly MessageBody[],
  sources: ImageSources,
  maxImages: number,
): Promise<ChatMessage[]> {
  const refs = collectImageRefs(messages)
  const extra = unreferencedAttachments(refs, sources.attachments)
  const count = refs.length + extra.length
  if (count > maxImages) {
    throw new KelixError(
      'too_many_images',
      `The request has ${count} images; this server accepts at most ${maxImages} per request.`,
      { param: 'messages' },
    )
  }
  const bytes = await resolveAll(refs, sources)
  const byPart = new Map(refs.map((ref, i) => [partKey(ref), bytes[i]!]))
  const resolved = messages.map((m, i) => toChatMessage(m, i, byPart))
  if (extra.length > 0)
    appendAttachments(
      resolved,
      extra.map((name) => sources.attachments!.get(name)!.bytes),
    )
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

function toChatMessage(
  message: MessageBody,
  messageIndex: number,
  images: ReadonlyMap<string, Uint8Array>,
): ChatMessage {
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
    throw new KelixError('invalid_request_error', 'The request has file parts but no user message to attach them to.', {
      param: 'messages',
    })
  }
  const parts: ContentPart[] =
    typeof target.content === 'string' ? [{ type: 'text', text: target.content }] : [...target.content]
  for (const bytes of files) parts.push({ type: 'image', image: { bytes, detail: 'auto' } })
  messages[last] = { role: target.role, content: parts }
}
