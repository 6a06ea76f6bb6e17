/**
 * llama.cpp beside Kelix Serve in the presets: node-llama-cpp's prebuilt CPU
 * binaries (installed apart, in bench/llama-cpp, by `npm run
 * bench:llama-cpp-setup`: the package's GPU builds are 650 MB CI never needs)
 * running the preset's LLM as a GGUF (gguf/qwen3-gguf.ts).
 *
 * The load mirrors the server's closed loop (load.ts): `c` sequences of one
 * context answer `max(4, c)` requests, each the same prompt token ids as ours
 * and a fixed number of greedy tokens (end-of-generation tokens are generated
 * through, as ours ban <|im_end|>). Sequences that wait in the same tick are
 * decoded in one batch, as node-llama-cpp batches them.
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
  createContext(options: { sequences: number; contextSize: number; batchSize: number; threads: { ideal: number; min: number } }): Promise<LlamaContext>
  dispose(): Promise<void>
}
interface LlamaContext {
  getSequence(): LlamaSequence
  dispose(): Promise<void>
}
interface LlamaSequence {
  clearHistory(): Promise<void>
  evaluate(tokens: number[], options: { temperature: 0; yieldEogToken: true }): AsyncGenerator<number, void, void>
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
  const context = (sequences: number, contextSize: number) => model.createContext({ sequences, contextSize, batchSize: 512, threads: { ideal: threads, min: threads } })

  /** Greedy tokens for `prompt` on a cleared sequence: when each token arrived, from the start. */
  const answer = async (sequence: LlamaSequence, prompt: readonly number[], tokens: number) => {
    await sequence.clearHistory()
    const started = performance.now()
    const at: number[] = []
    for await (const token of sequence.evaluate([...prompt], { temperature: 0, yieldEogToken: true })) {
      void token
      at.push(performance.now() - started)
      if (at.length >= tokens) break
    }
    return at
  }

  return {
    async closedLoop(prompt, answerTokens, concurrency) {
      const ctx = await context(concurrency, prompt.length + answerTokens + 16)
      try {
        const sequences = Array.from({ length: concurrency }, () => ctx.getSequence())
        await answer(sequences[0] as LlamaSequence, prompt, 4) // warm-up: first runs of every kernel
        const total = Math.max(4, concurrency)
        let next = 0
        const samples: number[][] = []
        const started = performance.now()
        await Promise.all(
          sequences.map(async (sequence) => {
            while (next < total) {
              next++
              samples.push(await answer(sequence, prompt, answerTokens))
            }
          }),
        )
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
        for (const prompt of prompts) ms.push(((await answer(sequence, prompt, 1))[0]) as number)
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
