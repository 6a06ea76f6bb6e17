/**
 * What constrained decoding costs (`npm run bench -- --mode grammar [--model-dir DIR]`):
 * a batch of 32 sequences, every one under a JSON schema, against the same
 * batch free, raw engine, rounds alternating so both see the machine alike.
 * Reports tokens/s of each, their ratio, and per step the time the masks took
 * (computed while decoder.onnx runs) and the sampling time (which applies
 * them). Both sides sample at temperature 1 with the same seeds, <|im_end|>
 * banned for the free side so it runs as long.
 */
import { Engine } from '../src/engine/engine.js'
import type { KelixModel } from '../src/engine/model.js'
import { generateAll, type OfflineRequest } from '../src/engine/offline.js'
import { GREEDY, type ResponseFormat } from '../src/engine/types.js'
import { median } from './stats.js'

const BATCH = 32
const TOKENS = 40
/** Long string values, so the grammar stays open for the whole answer on a random model. */
const SCHEMA: ResponseFormat = {
  type: 'json_schema',
  schema: {
    type: 'object',
    properties: { title: { type: 'string' }, tags: { type: 'array', items: { type: 'string' } } },
    required: ['title', 'tags'],
    additionalProperties: false,
  },
  strict: true,
}

export interface GrammarRound {
  side: 'free' | 'constrained'
  seconds: number
  tokens: number
  steps: number
  tokensPerSecond: number
  maskMsPerStep: number
  samplingMsPerStep: number
}

export interface GrammarBenchResult {
  model: string
  batch: number
  tokensPerAnswer: number
  rounds: GrammarRound[]
  freeTokensPerSecond: number
  constrainedTokensPerSecond: number
  /** Median constrained ÷ free throughput over the rounds. */
  ratio: number
  maskMsPerStep: number
}

export async function benchGrammar(model: KelixModel, opts: { rounds: number }): Promise<GrammarBenchResult> {
  const engine = new Engine(model)
  const prompts = await Promise.all(
    Array.from({ length: BATCH }, (_, i) =>
      engine.preparePrompt([{ role: 'user', content: `Item ${i}: describe it as JSON.` }], {
        addGenerationPrompt: true,
      }),
    ),
  )
  const requests = async (constrained: boolean): Promise<OfflineRequest[]> =>
    Promise.all(
      prompts.map(async (prompt, i) => {
        const sampling = {
          ...GREEDY,
          temperature: 1,
          seed: i,
          logitBias: constrained ? new Map<number, number>() : new Map([[model.config.special_tokens.im_end, -100]]),
        }
        const options = { sampling, maxNewTokens: TOKENS, stop: [], stopTokenIds: [] }
        return {
          id: `r${i}`,
          prompt,
          options: constrained ? { ...options, constraint: await engine.constraintFor(SCHEMA) } : options,
        }
      }),
    )
  const run = async (side: GrammarRound['side']): Promise<GrammarRound> => {
    const before = { ...engine.timings }
    const started = performance.now()
    const results = await generateAll(engine, await requests(side === 'constrained'))
    const seconds = (performance.now() - started) / 1000
    const tokens = [...results.values()].reduce((n, r) => n + r.tokenIds.length, 0)
    const steps = engine.timings.steps - before.steps
    return {
      side,
      seconds,
      tokens,
      steps,
      tokensPerSecond: tokens / seconds,
      maskMsPerStep: (engine.timings.maskMs - before.maskMs) / steps,
      samplingMsPerStep: (engine.timings.samplingMs - before.samplingMs) / steps,
    }
  }
  await run('free') // warm-up: first runs of every kernel, the grammar compiled
  await run('constrained')
  const rounds: GrammarRound[] = []
  for (let i = 0; i < opts.rounds; i++)
    for (const side of i % 2 === 0 ? (['free', 'constrained'] as const) : (['constrained', 'free'] as const))
      rounds.push(await run(side))
  const of = (side: GrammarRound['side']) => rounds.filter((r) => r.side === side)
  const ratios = of('constrained').map((c, i) => c.tokensPerSecond / (of('free')[i] as GrammarRound).tokensPerSecond)
  return {
    model: model.config.name,
    batch: BATCH,
    tokensPerAnswer: TOKENS,
    rounds,
    freeTokensPerSecond: median(of('free').map((r) => r.tokensPerSecond)),
    constrainedTokensPerSecond: median(of('constrained').map((r) => r.tokensPerSecond)),
    ratio: median(ratios),
    maskMsPerStep: median(of('constrained').map((r) => r.maskMsPerStep)),
  }
}
