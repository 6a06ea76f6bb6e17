/**
 * Reading a submitted generation's events: gathered into one answer, or
 * written out as SSE chunks. Either way the caller learns the usage and
 * timings for its request log, and a client that leaves aborts the generation.
 */
import type { Generation, GenerationEvent, RequestTimings, Usage } from '../../batching/client-types.js'
import { errorBody } from '../../http/error-body.js'
import type { SseWriter } from '../../http/sse.js'
import { emptyChoices, toOpenAiLogprob, type ChoiceResult, type ChunkFactory } from './response.js'
import { ToolCallStream } from './tool-call-stream.js'
import type { ToolCalling } from './tools.js'
import { KelixError } from '../../errors/kelix-error.js'

export interface Outcome {
  usage: Usage | undefined
  timings: RequestTimings | undefined
  /** The stable code of an error that ended the request, for the log. */
  errorCode: string | undefined
  /** The client went away before the end. */
  aborted: boolean
}

/** Events, with an iterator that throws turned into an `engine_failed` error event. */
async function* guarded(events: AsyncIterable<GenerationEvent>): AsyncGenerator<GenerationEvent> {
  try {
    yield* events
  } catch (err) {
    yield {
      type: 'error',
      error: new KelixError('engine_failed', `the engine failed while generating: ${(err as Error).message}`),
    }
  }
}

export interface Collected {
  choices: ChoiceResult[]
  usage: Usage
  timings: RequestTimings
}

/**
 * Every event into one result per choice; an error event becomes the thrown
 * KelixError. Undefined when `signal` aborted first (the client left).
 */
export async function collectChoices(
  generation: Generation,
  n: number,
  withLogprobs: boolean,
  signal: AbortSignal,
): Promise<Collected | undefined> {
  const choices = emptyChoices(n, withLogprobs)
  for await (const event of guarded(generation.events)) {
    if (signal.aborted) break
    if (event.type === 'delta') {
      const choice = choices[event.choice]
      if (choice === undefined) continue
      choice.text += event.text
      if (choice.logprobs !== undefined && event.logprobs !== undefined)
        choice.logprobs.push(...event.logprobs.map(toOpenAiLogprob))
    } else if (event.type === 'finish') {
      const choice = choices[event.choice]
      if (choice !== undefined) choice.finishReason = event.reason
    } else if (event.type === 'done') {
      return { choices, usage: event.usage, timings: event.timings }
    } else if (event.type !== 'prompt') {
      throw event.error
    }
  }
  if (signal.aborted) return undefined
  throw new KelixError('server_error', 'The generation ended without a result.')
}

/**
 * Writes the stream after the 200 headers: role chunks, then content and
 * finish chunks interleaved as the engine emits them, the usage chunk, `[DONE]`.
 * An error event becomes one `data: {"error": …}` before `[DONE]`.
 *
 * With tool calling a choice's text is read as calls as it comes
 * (tool-call-stream.ts): each call's header once its name is written, then its
 * argument fragments; a complete answer finishes with `tool_calls`, one cut
 * short by max_tokens with `length`.
 */
export async function writeStream(
  generation: Generation,
  n: number,
  writer: SseWriter,
  chunks: ChunkFactory,
  includeUsage: boolean,
  calling?: ToolCalling,
): Promise<Outcome> {
  const outcome: Outcome = { usage: undefined, timings: undefined, errorCode: undefined, aborted: false }
  const calls = Array.from({ length: n }, () =>
    calling === undefined ? undefined : new ToolCallStream(calling.parallel),
  )
  for (let index = 0; index < n; index++) await writer.send(chunks.role(index))
  for await (const event of guarded(generation.events)) {
    if (writer.closed) break
    if (event.type === 'delta') {
      const stream = calls[event.choice]
      if (stream !== undefined) {
        const deltas = stream.push(event.text)
        if (deltas.length > 0) await writer.send(chunks.toolCalls(event.choice, deltas))
      } else if (event.text !== '' || (event.logprobs !== undefined && event.logprobs.length > 0))
        await writer.send(chunks.content(event.choice, event.text, event.logprobs))
    } else if (event.type === 'finish') {
      await writer.send(
        chunks.finish(event.choice, calling !== undefined && event.reason === 'stop' ? 'tool_calls' : event.reason),
      )
    } else if (event.type === 'done') {
      outcome.usage = event.usage
      outcome.timings = event.timings
      if (includeUsage) await writer.send(chunks.usage(event.usage))
      break
    } else if (event.type !== 'prompt') {
      outcome.errorCode = event.error.code
      await writer.send(errorBody(event.error))
      break
    }
  }
  outcome.aborted = writer.signal.aborted
  if (outcome.aborted) generation.abort()
  else await writer.send('[DONE]')
  writer.end()
  return outcome
}
