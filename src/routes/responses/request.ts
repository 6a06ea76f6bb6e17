/**
 * A validated Responses request → chat turns and the engine's request: the
 * instructions as a system turn, `input_text`/`input_image` as chat's text
 * and image parts (images then resolved as chat resolves them), an
 * assistant's earlier `output_text` as its text, `text.format` as a response
 * format. Storage is refused: nothing is kept between requests.
 */
import type { ChatMessage, GenerateRequest, GenerationDefaults, ResponseFormat } from '../../batching/client-types.js'
import { defaultMaxTokensCap, toSamplingParams, type RequestLimits } from '../chat/request.js'
import type { MessageBody } from '../chat/schema.js'
import type { ResponseRequestBody } from './schema.js'
import { KelixError } from '../../errors/kelix-error.js'
import { checkAtMost } from '../server-limits.js'

/** The checks against storage and limits (the context is the engine's to check: src/engine/context-length.ts). */
export function checkResponseRequest(body: ResponseRequestBody, limits: RequestLimits): void {
  if (body.store === true)
    throw new KelixError('invalid_value', "Invalid 'store': this server keeps no responses; send store: false.", {
      param: 'store',
    })
  if (body.previous_response_id !== undefined && body.previous_response_id !== null) {
    throw new KelixError(
      'invalid_value',
      "Invalid 'previous_response_id': this server keeps no responses (store: false only); send the conversation as input items.",
      { param: 'previous_response_id' },
    )
  }
  const max = body.max_output_tokens ?? undefined
  if (max !== undefined && limits.maxTokensLimit !== undefined)
    checkAtMost('max_output_tokens', max, limits.maxTokensLimit)
}

/** The input as chat's message bodies (images still URLs), instructions first. */
export function toMessageBodies(body: ResponseRequestBody): MessageBody[] {
  const messages: MessageBody[] = []
  if (typeof body.instructions === 'string' && body.instructions !== '')
    messages.push({ role: 'system', content: body.instructions })
  if (typeof body.input === 'string') return [...messages, { role: 'user', content: body.input }]
  for (const item of body.input) {
    const role = item.role === 'developer' ? 'system' : item.role
    if (typeof item.content === 'string') {
      messages.push({ role, content: item.content } as MessageBody)
      continue
    }
    const parts = item.content.map((part) =>
      part.type === 'input_image'
        ? {
            type: 'image_url' as const,
            image_url: { url: part.image_url, ...(part.detail === undefined ? {} : { detail: part.detail }) },
          }
        : { type: 'text' as const, text: part.text },
    )
    if (role !== 'user' && parts.some((p) => p.type === 'image_url'))
      throw new KelixError('invalid_value', `Invalid 'input': images may only be in user items, not ${item.role}.`, {
        param: 'input',
      })
    messages.push({ role, content: parts } as MessageBody)
  }
  return messages
}

/** The GenerateRequest; what the body leaves out takes the model's `defaults`. */
export function toResponseGenerateRequest(
  body: ResponseRequestBody,
  messages: ChatMessage[],
  limits: RequestLimits,
  defaults: GenerationDefaults,
): GenerateRequest {
  const sampling = toSamplingParams(
    {
      ...(body.temperature === undefined ? {} : { temperature: body.temperature }),
      ...(body.top_p === undefined ? {} : { top_p: body.top_p }),
    },
    defaults,
  )
  const request: GenerateRequest = { messages, n: 1, sampling, stop: [] }
  const max = body.max_output_tokens ?? undefined
  if (max !== undefined) request.maxNewTokens = max
  else request.maxNewTokensLimit = defaultMaxTokensCap(limits, defaults)
  if (limits.maxPromptTokens !== undefined) request.maxPromptTokens = limits.maxPromptTokens
  if (limits.requestTimeoutMs !== undefined) request.timeoutMs = limits.requestTimeoutMs
  const format = toFormat(body.text?.format)
  if (format !== undefined) request.responseFormat = format
  return request
}

function toFormat(format: NonNullable<ResponseRequestBody['text']>['format']): ResponseFormat | undefined {
  if (format === undefined || format.type === 'text') return undefined
  if (format.type === 'json_object') return { type: 'json_object' }
  return { type: 'json_schema', schema: format.schema, strict: format.strict === true }
}
