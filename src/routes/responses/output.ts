/**
 * Engine events → Responses API objects: the `response` (one assistant
 * message with one `output_text` part), and the stream's named events in the
 * order the OpenAI SDKs expect:
 *
 *   response.created → response.in_progress → response.output_item.added →
 *   response.content_part.added → response.output_text.delta … →
 *   response.output_text.done → response.content_part.done →
 *   response.output_item.done → response.completed (or .incomplete)
 *
 * every event with its `sequence_number`. An engine error mid-stream is one
 * `error` event, then `response.failed`.
 */
import { randomBytes } from 'node:crypto'
import type { Generation, RequestTimings, Usage } from '../../batching/client-types.js'
import { errorBody } from '../../http/error-body.js'
import type { SseWriter } from '../../http/sse.js'
import type { ResponseRequestBody } from './schema.js'
import { KelixError } from '../../errors/kelix-error.js'

export interface ResponseMeta {
  id: string
  messageId: string
  createdAt: number
  model: string
}

export function responseMeta(model: string, now = Date.now()): ResponseMeta {
  return {
    id: `resp_${randomBytes(16).toString('hex')}`,
    messageId: `msg_${randomBytes(16).toString('hex')}`,
    createdAt: Math.floor(now / 1000),
    model,
  }
}

type Status = 'in_progress' | 'completed' | 'incomplete' | 'failed'

/** The `response` object; `text` undefined while nothing is out yet. */
export function responseObject(
  meta: ResponseMeta,
  body: ResponseRequestBody,
  status: Status,
  text: string | undefined,
  usage: Usage | undefined,
) {
  const part = { type: 'output_text' as const, text: text ?? '', annotations: [] as unknown[] }
  const output =
    text === undefined
      ? []
      : [
          {
            type: 'message' as const,
            id: meta.messageId,
            status: status === 'in_progress' ? 'in_progress' : 'completed',
            role: 'assistant' as const,
            content: [part],
          },
        ]
  return {
    id: meta.id,
    object: 'response' as const,
    created_at: meta.createdAt,
    status,
    model: meta.model,
    output,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    error: null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    temperature: body.temperature ?? 1,
    top_p: body.top_p ?? 1,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    tool_choice: body.tool_choice ?? 'auto',
    tools: [],
    text: { format: body.text?.format ?? { type: 'text' } },
    truncation: body.truncation ?? 'disabled',
    store: false,
    previous_response_id: null,
    metadata: body.metadata ?? {},
    user: body.user ?? null,
    usage: usage === undefined ? null : toResponseUsage(usage),
  }
}

function toResponseUsage(usage: Usage) {
  return {
    input_tokens: usage.promptTokens,
    input_tokens_details: { cached_tokens: usage.cachedPromptTokens },
    output_tokens: usage.completionTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: usage.totalTokens,
  }
}

export interface Collected {
  text: string
  status: 'completed' | 'incomplete'
  usage: Usage
  timings: RequestTimings
}

/** Every event into the text, its ending and usage; an error event is the thrown KelixError; undefined when the client left. */
export async function collectResponse(generation: Generation, signal: AbortSignal): Promise<Collected | undefined> {
  let text = ''
  let status: Collected['status'] = 'incomplete'
  for await (const event of generation.events) {
    if (signal.aborted) return undefined
    if (event.type === 'delta') text += event.text
    else if (event.type === 'finish') status = event.reason === 'stop' ? 'completed' : 'incomplete'
    else if (event.type === 'done') return { text, status, usage: event.usage, timings: event.timings }
    else if (event.type === 'error') throw event.error
  }
  if (signal.aborted) return undefined
  throw new KelixError('server_error', 'The generation ended without a result.')
}

/** Writes the named events after the 200 headers; returns the usage, timings and an error code for the log. */
export async function writeResponseStream(
  generation: Generation,
  writer: SseWriter,
  meta: ResponseMeta,
  body: ResponseRequestBody,
) {
  let sequence = 0
  const send = (type: string, fields: object) =>
    writer.sendEvent(type, { type, sequence_number: sequence++, ...fields })
  const at = { item_id: meta.messageId, output_index: 0, content_index: 0 }
  const outcome: { usage: Usage | undefined; timings: RequestTimings | undefined; errorCode: string | undefined } = {
    usage: undefined,
    timings: undefined,
    errorCode: undefined,
  }
  await send('response.created', { response: responseObject(meta, body, 'in_progress', undefined, undefined) })
  await send('response.in_progress', { response: responseObject(meta, body, 'in_progress', undefined, undefined) })
  await send('response.output_item.added', {
    output_index: 0,
    item: { type: 'message', id: meta.messageId, status: 'in_progress', role: 'assistant', content: [] },
  })
  await send('response.content_part.added', { ...at, part: { type: 'output_text', text: '', annotations: [] } })
  let text = ''
  let status: 'completed' | 'incomplete' = 'incomplete'
  try {
    for await (const event of generation.events) {
      if (writer.closed) break
      if (event.type === 'delta' && event.text !== '') {
        text += event.text
        await send('response.output_text.delta', { ...at, delta: event.text, logprobs: [] })
      } else if (event.type === 'finish') status = event.reason === 'stop' ? 'completed' : 'incomplete'
      else if (event.type === 'done') {
        outcome.usage = event.usage
        outcome.timings = event.timings
        await send('response.output_text.done', { ...at, text, logprobs: [] })
        await send('response.content_part.done', { ...at, part: { type: 'output_text', text, annotations: [] } })
        await send('response.output_item.done', {
          output_index: 0,
          item: {
            type: 'message',
            id: meta.messageId,
            status: 'completed',
            role: 'assistant',
            content: [{ type: 'output_text', text, annotations: [] }],
          },
        })
        await send(status === 'completed' ? 'response.completed' : 'response.incomplete', {
          response: responseObject(meta, body, status, text, event.usage),
        })
        break
      } else if (event.type === 'error') {
        outcome.errorCode = event.error.code
        const { code, message, param } = errorBody(event.error).error
        await send('error', { code, message, param })
        await send('response.failed', {
          response: { ...responseObject(meta, body, 'failed', text, undefined), error: { code, message } },
        })
        break
      }
    }
  } finally {
    if (writer.signal.aborted) generation.abort()
    writer.end()
  }
  return outcome
}
