/**
 * llama.cpp beside Kelix Serve in the presets: node-llama-cpp's prebuilt CPU
 * binaries (installed apart, in bench/llama-cpp, by `npm run
 * bench:llama-cpp-setup`: the package's GPU builds are 650 MB CI never needs)
 * running the preset's LLM as a GGUF (gguf/qwen3-gguf.ts).
 *
 * The load mirrors the server's closed loop (load.ts): `c` sequences of one
 * context answer `max(4, c)` requests, each the same prompt token ids as ours
 * and a fixed number of greedy tokens (end-of-generation tokens are generated
 * through, as ours ban <|im_end|>).
 *
 * It is driven in lockstep, as llama-server drives its slots: each step every
 * busy sequence submits its next token (a new request its whole prompt) in the
 * same tick, so node-llama-cpp decodes them in one batch, and the next step
 * starts when all have their token. Left to `sequence.evaluate`, each
 * sequence asks for its next token when its own sampling ends, the batches
 * fragment, and c sequences decode about one at a time (measured: the same
 * tokens/s at c32 as at c1).
 */
import { existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { median } from './stats.js'

const ENTRY = fileURLToPath(new URL('llama-cpp/node_modules/node-llama-cpp/dist/index.js', import.meta.url))
export const LLAMA_CPP_SETUP = 'npm run bench:llama-cpp-setup'
/** The version bench/llama-cpp/package.json pins. */
export const LLAMA_CPP_VERSION = '3.22.1'

/** The parts of node-llama-cpp's API the benchmark uses (it is not installed where CI type-checks). */
export interface NodeLlamaCpp {
  getLlama(options: { gpu: false; build: 'never'; logLevel: 'error'; maxThreads: number }): Promise<Llama>
}
interface Llama {
  loadModel(options: { modelPath: string; gpuLayers: 0 }): Promise<LlamaModel>
  dispose(): Promise<void>
}
interface LlamaModel {
  createContext(options: {
    sequences: number
    contextSize: number
    batchSize: number
    threads: { ideal: number; min: number }
  }): Promise<LlamaContext>
  dispose(): Promise<void>
}
interface LlamaContext {
  getSequence(): LlamaSequence
  dispose(): Promise<void>
}
type Greedy = [token: number, options: { generateNext: { token: true; options: { temperature: 0 } } }]
interface LlamaSequence {
  clearHistory(): Promise<void>
  /** Evaluates the tokens; the one marked `generateNext` yields the next token. */
  controlledEvaluate(input: Array<number | Greedy>): Promise<Array<{ next?: { token?: number | null } } | undefined>>
}

export interface LlamaCppLoad {
  concurrency: number
  requests: number
  outputTokensPerSecond: number
  ttftP50Ms: number
  /** Median gap between a sequence's tokens: one decode step at this concurrency. */
  itlP50Ms: number
}

/** A loaded GGUF, ready for loads and the long-prompt TTFT. */
export interface LlamaCppRunner {
  closedLoop(prompt: readonly number[], answerTokens: number, concurrency: number): Promise<LlamaCppLoad>
  /** Milliseconds to the first token of each prompt, one at a time. */
  ttft(prompts: ReadonlyArray<readonly number[]>): Promise<number[]>
  dispose(): Promise<void>
}

/** node-llama-cpp, or why it is not there. */
export async function loadNodeLlamaCpp(): Promise<{ module: NodeLlamaCpp } | { missing: string }> {
  if (!existsSync(ENTRY)) return { missing: `node-llama-cpp is not installed (run \`${LLAMA_CPP_SETUP}\`)` }
  return { module: (await import(pathToFileURL(ENTRY).href)) as NodeLlamaCpp }
}

export async function openLlamaCpp(module: NodeLlamaCpp, gguf: string, threads: number): Promise<LlamaCppRunner> {
  const llama = await module.getLlama({ gpu: false, build: 'never', logLevel: 'error', maxThreads: threads })
  const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 }).catch(async (err: unknown) => {
    await llama.dispose()
    throw err
  })
  const context = (sequences: number, contextSize: number) =>
    model.createContext({ sequences, contextSize, batchSize: 512, threads: { ideal: threads, min: threads } })

  return {
    async closedLoop(prompt, answerTokens, concurrency) {
      const ctx = await context(concurrency, prompt.length + answerTokens + 16)
      try {
        const sequences = Array.from({ length: concurrency }, () => ctx.getSequence())
        await lockstep(sequences.slice(0, 1), prompt, 4, 1) // warm-up: first runs of every kernel
        const started = performance.now()
        const samples = await lockstep(sequences, prompt, answerTokens, Math.max(4, concurrency))
        const seconds = (performance.now() - started) / 1000
        const gaps = samples.flatMap((at) => at.slice(1).map((t, i) => t - (at[i] as number)))
        return {
          concurrency,
          requests: samples.length,
          outputTokensPerSecond: samples.reduce((n, at) => n + at.length, 0) / seconds,
          ttftP50Ms: median(samples.map((at) => at[0] as number)),
          itlP50Ms: median(gaps),
        }
      } finally {
        await ctx.dispose()
      }
    },
    async ttft(prompts) {
      const ctx = await context(1, Math.max(...prompts.map((p) => p.length)) + 16)
      try {
        const sequence = ctx.getSequence()
        const ms: number[] = []
        for (const prompt of prompts) ms.push((await lockstep([sequence], prompt, 1, 1))[0]?.[0] as number)
        return ms
      } finally {
        await ctx.dispose()
      }
    },
    async dispose() {
      await model.dispose()
      await llama.dispose()
    },
  }
}

interface Answering {
  sequence: LlamaSequence
  /** What the next step evaluates: the prompt, then the last token. */
  input: number[]
  started: number
  /** When each token arrived, ms from the request's start. */
  at: number[]
}

/**
 * `total` requests of `tokens` greedy tokens for `prompt`, on `sequences` at
 * once, one batched decode per step; per request, when each token arrived.
 */
async function lockstep(
  sequences: readonly LlamaSequence[],
  prompt: readonly number[],
  tokens: number,
  total: number,
): Promise<number[][]> {
  let begun = 0
  const begin = async (sequence: LlamaSequence): Promise<Answering> => {
    begun++
    await sequence.clearHistory()
    return { sequence, input: [...prompt], started: performance.now(), at: [] }
  }
  const greedy = (input: readonly number[]): Array<number | Greedy> =>
    input.map((t, i) =>
      i === input.length - 1 ? [t, { generateNext: { token: true, options: { temperature: 0 } } }] : t,
    )
  const done: number[][] = []
  let busy = await Promise.all(sequences.slice(0, total).map(begin))
  while (busy.length > 0) {
    // Every busy sequence submits in this tick: one batch.
    const outs = await Promise.all(busy.map((a) => a.sequence.controlledEvaluate(greedy(a.input))))
    const now = performance.now()
    const next: Answering[] = []
    for (const [i, a] of busy.entries()) {
      const token = outs[i]?.at(-1)?.next?.token
      if (token === undefined || token === null) throw new Error('llama.cpp returned no next token')
      a.at.push(now - a.started)
      if (a.at.length < tokens) next.push({ ...a, input: [token] })
      else {
        done.push(a.at)
        if (begun < total) next.push(await begin(a.sequence))
      }
    }
    busy = next
  }
  return done
}
