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
  /** KV cache bytes passed to or from decoder.onnx in host memory per step (StepTimings.kvHostBytes). */
  kvHostBytesPerStep: number
}

const PROMPT = 'Tokens per second, time to first token and queue time are the numbers that matter to operators. '

export async function benchEngine(
  models: Array<{ graph: string; model: KelixModel }>,
  opts: { batches: number[]; steps: number; warmup: number },
): Promise<EngineBenchRow[]> {
  const rows: EngineBenchRow[] = []
  for (const batch of opts.batches) rows.push(...(await benchBatch(models, batch, opts)))
  return rows
}

/** A batch of decoding sequences on one model. */
class DecodingBatch {
  readonly durations: number[] = []
  private before: StepTimings | undefined
  private readonly ids: string[]
  /** Prompt positions of the first sequence: where decoding starts. */
  private contextStart = 0

  private constructor(
    readonly engine: Engine,
    batch: number,
  ) {
    this.ids = Array.from({ length: batch }, (_, i) => `b${i}`)
  }

  /** Prompts added and prefilled, `warmup` decode steps run. */
  static async start(
    model: KelixModel,
    batch: number,
    opts: { steps: number; warmup: number },
  ): Promise<DecodingBatch> {
    const engine = new Engine(model)
    const decoding = new DecodingBatch(engine, batch)
    // Ban <|im_end|> so every sequence decodes for the whole measurement.
    const sampling = { ...GREEDY, logitBias: new Map([[model.config.special_tokens.im_end, -100]]) }
    for (const [i, id] of decoding.ids.entries()) {
      const prompt = await engine.preparePrompt([{ role: 'user', content: `${i}: ${PROMPT}` }], {
        addGenerationPrompt: true,
      })
      engine.add(id, prompt, { sampling, maxNewTokens: opts.steps + opts.warmup + 2, stop: [], stopTokenIds: [] })
    }
    decoding.contextStart = engine.get('b0')?.blocks.length ?? 0
    await engine.step(decoding.ids.map((id) => ({ id, numBlocks: engine.get(id)?.blocks.length ?? 0 })))
    for (let i = 0; i < opts.warmup; i++) await decoding.decode()
    decoding.before = { ...engine.timings }
    return decoding
  }

  async timedStep(): Promise<void> {
    const start = performance.now()
    await this.decode()
    this.durations.push(performance.now() - start)
  }

  row(): Omit<EngineBenchRow, 'graph'> {
    for (const id of this.ids) this.engine.release(id)
    const steps = this.durations.length
    const before = this.before as StepTimings
    const per = (key: 'llmMs' | 'blockDecoderMs' | 'samplingMs') => (this.engine.timings[key] - before[key]) / steps
    const mean = this.durations.reduce((a, b) => a + b, 0) / steps
    const sorted = [...this.durations].sort((a, b) => a - b)
    return {
      batch: this.ids.length,
      contextStart: this.contextStart,
      steps,
      stepMsMean: mean,
      stepMsP50: sorted[Math.floor(sorted.length / 2)] as number,
      tokensPerSecond: (this.ids.length * 1000) / mean,
      llmMs: per('llmMs'),
      blockDecoderMs: per('blockDecoderMs'),
      samplingMs: per('samplingMs'),
      otherMs: mean - per('llmMs') - per('blockDecoderMs') - per('samplingMs'),
      kvHostBytesPerStep: (this.engine.timings.kvHostBytes - before.kvHostBytes) / steps,
    }
  }

  private decode() {
    return this.engine.step(this.ids.map((id) => ({ id, numBlocks: 1 })))
  }
}

/** Every model at one batch size, their decode steps alternating so the machine's drift hits them alike. */
async function benchBatch(
  models: Array<{ graph: string; model: KelixModel }>,
  batch: number,
  opts: { steps: number; warmup: number },
): Promise<EngineBenchRow[]> {
  const batches: DecodingBatch[] = []
  for (const { model } of models) batches.push(await DecodingBatch.start(model, batch, opts))
  for (let i = 0; i < opts.steps; i++) for (const b of batches) await b.timedStep()
  return batches.map((b, i) => ({ ...b.row(), graph: (models[i] as { graph: string }).graph }))
}
