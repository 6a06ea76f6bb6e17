/**
 * Reading the generations of a completions request (one per prompt): every
 * event into whole choices, or written as `text_completion` chunks as they
 * arrive, from all prompts at once. An error event of any generation ends the
 * request (the others are aborted): thrown before the 200, or sent as one
 * `data: {"error": …}` in a stream.
 */
import type { Generation, GenerationEvent, RequestTimings, Usage } from '../../batching/client-types.js'
import { errorBody } from '../../http/error-body.js'
import type { SseWriter } from '../../http/sse.js'
import { toOpenAiUsage } from '../chat/response.js'
import { CompletionChoices, type CompletionChoice } from './choices.js'
import { KelixError } from '../../errors/kelix-error.js'

export interface CompletionMeta {
  id: string
  created: number
  model: string
  systemFingerprint: string
}

export interface CompletionOutcome {
  usage: Usage | undefined
  /** The first generation's timings (the request log's queue time and TTFT). */
  timings: RequestTimings | undefined
  errorCode: string | undefined
}

/** The events of every generation as they come, each with its prompt's index. */
async function* merged(generations: readonly Generation[]): AsyncGenerator<{ p: number; event: GenerationEvent }> {
  const iterators = generations.map((g) => g.events[Symbol.asyncIterator]())
  const next = (p: number) => (iterators[p] as AsyncIterator<GenerationEvent>).next().then((result) => ({ p, result }))
  const pending = new Map(iterators.map((_, p) => [p, next(p)]))
  while (pending.size > 0) {
    const { p, result } = await Promise.race(pending.values())
    if (result.done === true) {
      pending.delete(p)
      continue
    }
    pending.set(p, next(p))
    yield { p, event: result.value }
  }
}

/** Folds one event into the choices; the pieces a stream sends for it, the usage when it ends its generation. */
function fold(
  choices: CompletionChoices,
  p: number,
  event: GenerationEvent,
): { pieces: CompletionChoice[]; done?: { usage: Usage; timings: RequestTimings } } {
  if (event.type === 'prompt') return { pieces: choices.echo(p, event.text, event.logprobs) }
  if (event.type === 'delta') return { pieces: [choices.delta(p, event.choice, event.text, event.logprobs)] }
  if (event.type === 'finish') return { pieces: [choices.finish(p, event.choice, event.reason)] }
  if (event.type === 'done') return { pieces: [], done: { usage: event.usage, timings: event.timings } }
  throw event.error
}

function addUsage(total: Usage | undefined, usage: Usage): Usage {
  if (total === undefined) return usage
  return {
    promptTokens: total.promptTokens + usage.promptTokens,
    cachedPromptTokens: total.cachedPromptTokens + usage.cachedPromptTokens,
    completionTokens: total.completionTokens + usage.completionTokens,
    totalTokens: total.totalTokens + usage.totalTokens,
  }
}

export function completionObject(meta: CompletionMeta, choices: readonly CompletionChoice[], usage: Usage) {
  return {
    id: meta.id,
    object: 'text_completion' as const,
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.systemFingerprint,
    choices,
    usage: toOpenAiUsage(usage),
  }
}

/** Every generation to its end, into whole choices. Undefined when `signal` aborted first (the client left). */
export async function collectCompletion(
  generations: readonly Generation[],
  choices: CompletionChoices,
  signal: AbortSignal,
): Promise<{ choices: CompletionChoice[]; usage: Usage; timings: RequestTimings | undefined } | undefined> {
  let usage: Usage | undefined
  let timings: RequestTimings | undefined
  try {
    for await (const { p, event } of merged(generations)) {
      if (signal.aborted) break
      const { done } = fold(choices, p, event)
      if (done === undefined) continue
      usage = addUsage(usage, done.usage)
      if (p === 0) timings = done.timings
    }
  } catch (err) {
    for (const g of generations) g.abort()
    throw err
  }
  if (signal.aborted) {
    for (const g of generations) g.abort()
    return undefined
  }
  if (usage === undefined) throw new KelixError('server_error', 'The generation ended without a result.')
  return { choices: choices.all(), usage, timings }
}

/** Writes the stream after the 200 headers: a chunk per piece as it comes, the usage chunk when asked for, `[DONE]`. */
export async function writeCompletionStream(
  generations: readonly Generation[],
  choices: CompletionChoices,
  writer: SseWriter,
  meta: CompletionMeta,
  includeUsage: boolean,
): Promise<CompletionOutcome> {
  const outcome: CompletionOutcome = { usage: undefined, timings: undefined, errorCode: undefined }
  const chunk = (pieces: CompletionChoice[], usage?: Usage) => {
    const base = {
      id: meta.id,
      object: 'text_completion' as const,
      created: meta.created,
      model: meta.model,
      system_fingerprint: meta.systemFingerprint,
      choices: pieces,
    }
    return includeUsage ? { ...base, usage: usage === undefined ? null : toOpenAiUsage(usage) } : base
  }
  try {
    for await (const { p, event } of merged(generations)) {
      if (writer.closed) break
      const { pieces, done } = fold(choices, p, event)
      for (const piece of pieces) await writer.send(chunk([piece]))
      if (done === undefined) continue
      outcome.usage = addUsage(outcome.usage, done.usage)
      if (p === 0) outcome.timings = done.timings
    }
    if (!writer.closed && includeUsage && outcome.usage !== undefined) await writer.send(chunk([], outcome.usage))
  } catch (err) {
    const error =
      err instanceof KelixError
        ? err
        : new KelixError('server_error', `the engine failed while generating: ${(err as Error).message}`)
    outcome.errorCode = error.code
    for (const g of generations) g.abort()
    if (!writer.closed) await writer.send(errorBody(error))
  }
  if (writer.signal.aborted) for (const g of generations) g.abort()
  else await writer.send('[DONE]')
  writer.end()
  return outcome
}
