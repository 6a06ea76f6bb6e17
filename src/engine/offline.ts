/**
 * Runs a set of sequences to completion without a scheduler: every step
 * computes each unfinished sequence's remaining blocks (prefill chunks capped
 * at `chunk`), then samples. The raw-engine baseline of the benchmarks, and
 * the driver of the engine's own tests.
 */
import type { Engine, PreparedPrompt } from './engine.js'
import type { SequenceOptions } from './sequence.js'
import type { EchoedPrompt, FinishReason, TokenLogprob } from './types.js'

export interface OfflineRequest {
  id: string
  prompt: PreparedPrompt
  options: SequenceOptions
}

export interface OfflineResult {
  tokenIds: number[]
  text: string
  logprobs: TokenLogprob[]
  finishReason: FinishReason
  steps: number
  /** The prompt, when `echo` asked for it. */
  prompt?: EchoedPrompt
}

export async function generateAll(
  engine: Engine,
  requests: readonly OfflineRequest[],
  opts: { chunk?: number } = {},
): Promise<Map<string, OfflineResult>> {
  const chunk = opts.chunk ?? Number.POSITIVE_INFINITY
  const results = new Map<string, OfflineResult>()
  for (const r of requests) {
    engine.add(r.id, r.prompt, r.options)
    results.set(r.id, { tokenIds: [], text: '', logprobs: [], finishReason: 'length', steps: 0 })
  }
  let running = requests.map((r) => r.id)
  try {
    while (running.length > 0) {
      const plan = running.map((id) => {
        const seq = engine.get(id)
        if (seq === undefined) throw new Error(`sequence ${id} vanished`)
        const cachedBlocks = engine.prefixHit(id)
        return { id, cachedBlocks, numBlocks: Math.min(chunk, seq.blocks.length - seq.numComputed - cachedBlocks) }
      })
      const outputs = await engine.step(plan)
      for (const [id, out] of outputs) {
        const result = results.get(id) as OfflineResult
        result.steps++
        result.tokenIds.push(...out.tokenIds)
        result.text += out.text
        if (out.logprobs !== undefined) result.logprobs.push(...out.logprobs)
        if (out.finishReason !== undefined) result.finishReason = out.finishReason
        if (out.prompt !== undefined) result.prompt = out.prompt
      }
      running = running.filter((id) => outputs.get(id)?.finishReason === undefined)
      for (const id of outputs.keys()) if (!running.includes(id)) engine.release(id)
    }
  } finally {
    for (const r of requests) engine.release(r.id)
  }
  return results
}
