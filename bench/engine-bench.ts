/**
 * Raw-engine benchmark: decode steps at batch 1, 4, 16 and 32, no HTTP, no
 * scheduler. Each configuration prefills its batch, warms up, then times
 * decode steps and splits them into LLM step (building inputs, decoder.onnx,
 * storing the cache), block-decoder micro-steps and sampling. Each model is a
 * column of the comparison: the default export (split attention, only new
 * cache entries out) beside the conventional one (whole `present.*` cache out).
 * Run through `npm run bench`.
 */
import { Engine, type StepTimings } from '../src/engine/engine.js'
import type { KelixModel } from '../src/engine/model.js'
import { GREEDY } from '../src/engine/types.js'

export interface EngineBenchRow {
  batch: number
  graph: string
  contextStart: number
  steps: number
  stepMsMean: number
  stepMsP50: number
  tokensPerSecond: number
  llmMs: number
  blockDecoderMs: number
  samplingMs: number
  otherMs: number
}

const PROMPT = 'Tokens per second, time to first token and queue time are the numbers that matter to operators. '

export async function benchEngine(models: Array<{ graph: string; model: KelixModel }>, opts: { batches: number[]; steps: number; warmup: number }): Promise<EngineBenchRow[]> {
  const rows: EngineBenchRow[] = []
  for (const batch of opts.batches) {
    for (const { graph, model } of models) rows.push({ ...(await benchOne(model, batch, opts)), graph })
  }
  return rows
}

async function benchOne(model: KelixModel, batch: number, opts: { steps: number; warmup: number }): Promise<Omit<EngineBenchRow, 'graph'>> {
  const engine = new Engine(model)
  const imEnd = model.config.special_tokens.im_end
  // Ban <|im_end|> so every sequence decodes for the whole measurement.
  const sampling = { ...GREEDY, logitBias: new Map([[imEnd, -100]]) }
  const ids = Array.from({ length: batch }, (_, i) => `b${i}`)
  for (const [i, id] of ids.entries()) {
    const prompt = await engine.preparePrompt([{ role: 'user', content: `${i}: ${PROMPT}` }], { addGenerationPrompt: true })
    engine.add(id, prompt, { sampling, maxNewTokens: opts.steps + opts.warmup + 2, stop: [], stopTokenIds: [] })
  }
  const contextStart = engine.get('b0')?.blocks.length ?? 0
  await engine.step(ids.map((id) => ({ id, numBlocks: engine.get(id)?.blocks.length ?? 0 })))
  const decode = () => engine.step(ids.map((id) => ({ id, numBlocks: 1 })))
  for (let i = 0; i < opts.warmup; i++) await decode()
  const before: StepTimings = { ...engine.timings }
  const durations: number[] = []
  for (let i = 0; i < opts.steps; i++) {
    const start = performance.now()
    await decode()
    durations.push(performance.now() - start)
  }
  for (const id of ids) engine.release(id)
  const per = (key: 'llmMs' | 'blockDecoderMs' | 'samplingMs') => (engine.timings[key] - before[key]) / opts.steps
  const mean = durations.reduce((a, b) => a + b, 0) / durations.length
  const sorted = [...durations].sort((a, b) => a - b)
  return {
    batch,
    contextStart,
    steps: opts.steps,
    stepMsMean: mean,
    stepMsP50: sorted[Math.floor(sorted.length / 2)] as number,
    tokensPerSecond: (batch * 1000) / mean,
    llmMs: per('llmMs'),
    blockDecoderMs: per('blockDecoderMs'),
    samplingMs: per('samplingMs'),
    otherMs: mean - per('llmMs') - per('blockDecoderMs') - per('samplingMs'),
  }
}
