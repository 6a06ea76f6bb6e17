/**
 * What the generating routes (chat completions, completions) share around an
 * engine call: noticing the client leave, turning the engine's typed refusal
 * into the API error, and the request log's model, usage and timings.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { GenerationError } from '../batching/client-types.js'
import { ApiError, fromGenerationError } from '../http/api-errors.js'
import type { RequestStats } from '../http/request-log.js'

/** Aborts when the client goes away before the response is complete. */
export function clientGoneSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController()
  const res = reply.raw
  if (res.destroyed) controller.abort()
  else res.once('close', () => res.writableFinished || controller.abort())
  return controller.signal
}

/** Runs an engine call, turning its typed refusal into the API error. */
export async function engineCall<T>(call: () => Promise<T> | T): Promise<T> {
  try {
    return await call()
  } catch (err) {
    if (err instanceof GenerationError) throw fromGenerationError(err)
    throw err
  }
}

export function recordTimings(stats: RequestStats, outcome: { usage?: { completionTokens: number } | undefined; timings?: { queueMs: number; firstTokenMs: number | undefined } | undefined }): void {
  if (outcome.usage !== undefined) stats.completionTokens = outcome.usage.completionTokens
  if (outcome.timings !== undefined) {
    stats.queueMs = Math.round(outcome.timings.queueMs)
    if (outcome.timings.firstTokenMs !== undefined) stats.ttftMs = Math.round(outcome.timings.firstTokenMs)
  }
}

/**
 * For a `.catch`: the engine names chat's `messages` for what is wrong with a
 * prompt; a route whose prompt is another field names that one instead.
 */
export function promptParam(param: string) {
  return (err: unknown): never => {
    if (err instanceof ApiError && err.param === 'messages' && param !== 'messages') throw new ApiError(err.code, err.message, param, err.retryAfterSeconds)
    throw err
  }
}

/** The model on the log line, also for requests that fail validation. */
export async function noteModel(request: FastifyRequest): Promise<void> {
  const model = (request.body as { model?: unknown } | undefined)?.model
  if (typeof model === 'string') request.stats.model = model.slice(0, 200)
}
