/**
 * What the generating routes (chat completions, completions) share around an
 * engine call: noticing the client leave, naming the prompt field in the
 * engine's refusals, and the request log's model, usage and timings.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { RequestStats } from '../http/request-log.js'
import { KelixError } from '../errors/kelix-error.js'

/** Aborts when the client goes away before the response is complete. */
export function clientGoneSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController()
  const res = reply.raw
  if (res.destroyed) controller.abort()
  else res.once('close', () => res.writableFinished || controller.abort())
  return controller.signal
}

/**
 * Runs an engine call. A refusal about the prompt names this route's prompt
 * field (`messages`, `prompt`, `input`, `tokens`) unless it names a field itself:
 * the engine does not know which field the prompt came from.
 */
export async function engineCall<T>(promptField: string, call: () => Promise<T> | T): Promise<T> {
  try {
    return await call()
  } catch (err) {
    if (err instanceof KelixError && err.spec.aboutPrompt === true && err.fields.param === undefined)
      throw err.withFields({ param: promptField })
    throw err
  }
}

export function recordTimings(
  stats: RequestStats,
  outcome: {
    usage?: { completionTokens: number } | undefined
    timings?: { queueMs: number; firstTokenMs: number | undefined } | undefined
  },
): void {
  if (outcome.usage !== undefined) stats.completionTokens = outcome.usage.completionTokens
  if (outcome.timings !== undefined) {
    stats.queueMs = Math.round(outcome.timings.queueMs)
    if (outcome.timings.firstTokenMs !== undefined) stats.ttftMs = Math.round(outcome.timings.firstTokenMs)
  }
}

/** The model on the log line, also for requests that fail validation. */
export async function noteModel(request: FastifyRequest): Promise<void> {
  const model = (request.body as { model?: unknown } | undefined)?.model
  if (typeof model === 'string') request.stats.model = model.slice(0, 200)
}
