/**
 * Sampler benchmark at the real vocabulary (151,936 ids): `Sampler.sample` per row for the common
 * parameter sets, beside the frozen pre-fast-path sampler (test fixture) as "before". Every timed
 * call of both is also compared: the ids must be identical. Run through `npm run bench -- --mode sampling`.
 *
 * Rows (each with one −∞, as the engine masks <eob> in chat rows):
 * - peaked:   Gaussian bulk (std 2.5) plus 30 outliers at 20 − 2·ln(1+j) ± 0.5: p(top) ≈ 0.55–0.8,
 *             0.2–0.6% of the mass in the bulk, a top_p 0.9 nucleus of 4–7 ids;
 * - moderate: the same with the outliers 3 lower: ~5% of the mass in the bulk, a nucleus of 7–40
 *             ids that reaches into the bulk;
 * - flat:     Gaussian with std 1 and no outliers: the top_p 0.9 nucleus holds ~90,000 ids.
 */
import { nucleusPaths } from '../src/engine/sampling/nucleus.js'
import { Rng } from '../src/engine/sampling/rng.js'
import { Sampler } from '../src/engine/sampling/sampler.js'
import { SamplerScratch } from '../src/engine/sampling/scratch.js'
import { TokenHistory } from '../src/engine/sampling/token-history.js'
import { GREEDY, type SamplingParams } from '../src/engine/types.js'
import { ReferenceSampler } from '../test/engine/sampling/fixtures/reference-sampler.js'

export const VOCAB = 151_936
const ROWS_PER_KIND = 16
/** Where the benchmark rows put their −∞ (as <eob> in a chat row). */
const MASKED_ID = 151_643

export interface SamplingBenchRow {
  rows: string
  case: string
  logprobs: boolean
  beforeP50Ms: number
  beforeP90Ms: number
  afterP50Ms: number
  afterP90Ms: number
  /** Calls whose ids differed between the two samplers (must be 0). */
  mismatches: number
  /** For top_p: how the timed calls went through nucleus.ts (`nucleusPaths`). */
  nucleus?: Record<keyof typeof nucleusPaths, number>
}

function gaussian(rng: Rng): number {
  const u = rng.nextFloat() || Number.MIN_VALUE
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.nextFloat())
}

/** A Gaussian row of std `std` with 30 outliers from `top` down (none when `top` is undefined). */
export function syntheticRow(rng: Rng, std: number, top?: number): Float32Array {
  const row = Float32Array.from({ length: VOCAB }, () => std * gaussian(rng))
  if (top !== undefined) {
    for (let j = 0; j < 30; j++)
      row[Math.floor(rng.nextFloat() * VOCAB)] = top - 2 * Math.log(1 + j) + 0.5 * gaussian(rng)
  }
  row[MASKED_ID] = -Infinity
  return row
}

const KINDS: Record<string, (rng: Rng) => Float32Array> = {
  peaked: (rng) => syntheticRow(rng, 2.5, 20),
  moderate: (rng) => syntheticRow(rng, 2.5, 17),
  flat: (rng) => syntheticRow(rng, 1),
}

const sampling = (over: Partial<SamplingParams>): SamplingParams => ({
  ...GREEDY,
  temperature: 1,
  seed: undefined,
  ...over,
})

const CASES: Array<{ name: string; params: SamplingParams; kinds: string[] }> = [
  { name: 'T=1 top_p 0.9', params: sampling({ topP: 0.9 }), kinds: ['peaked', 'moderate', 'flat'] },
  { name: 'T=0.7 top_p 0.9', params: sampling({ temperature: 0.7, topP: 0.9 }), kinds: ['peaked', 'moderate', 'flat'] },
  { name: 'T=1 top_k 50', params: sampling({ topK: 50 }), kinds: ['peaked', 'flat'] },
  { name: 'T=1 no filter', params: sampling({}), kinds: ['peaked', 'flat'] },
  { name: 'greedy', params: GREEDY, kinds: ['peaked', 'flat'] },
]

function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN
}

/** Times `calls` samples cycling over `rows` after `warmup` untimed ones; returns the ids and the sorted times. */
function timeSampler(
  sample: (row: Float32Array, rng: Rng) => number,
  rows: Float32Array[],
  warmup: number,
  calls: number,
): { ids: number[]; ms: number[] } {
  const rng = new Rng(1)
  for (let i = 0; i < warmup; i++) sample(rows[i % rows.length]!, rng)
  const ids: number[] = []
  const ms: number[] = []
  const timed = new Rng(2)
  for (let i = 0; i < calls; i++) {
    const row = rows[i % rows.length]!
    const start = performance.now()
    ids.push(sample(row, timed))
    ms.push(performance.now() - start)
  }
  return { ids, ms: ms.sort((a, b) => a - b) }
}

export function benchSampling(opts: { quick: boolean }): SamplingBenchRow[] {
  const rows = Object.fromEntries(
    Object.entries(KINDS).map(([kind, make], k) => {
      const rng = new Rng(100 + k)
      return [kind, Array.from({ length: opts.quick ? 4 : ROWS_PER_KIND }, () => make(rng))]
    }),
  )
  // V8 needs a few hundred calls before the sampler runs at its steady speed.
  const warmup = opts.quick ? 50 : 300
  const calls = opts.quick ? 50 : 300
  const history = new TokenHistory()
  const scratch = new SamplerScratch(VOCAB)
  const out: SamplingBenchRow[] = []
  for (const c of CASES) {
    for (const logprobs of [false, true]) {
      const params = { ...c.params, topLogprobs: logprobs ? 5 : undefined }
      const before = new ReferenceSampler(params, VOCAB)
      const after = new Sampler(params, VOCAB, scratch)
      for (const kind of c.kinds) {
        const kindRows = rows[kind]!
        const old = timeSampler((row, rng) => before.sample(row, 0, VOCAB, history, rng).id, kindRows, warmup, calls)
        const paths = { ...nucleusPaths }
        const now = timeSampler((row, rng) => after.sample(row, 0, VOCAB, history, rng).id, kindRows, warmup, calls)
        const nucleus = Object.fromEntries(
          Object.entries(nucleusPaths).map(([k, v]) => [k, v - paths[k as keyof typeof paths]]),
        ) as SamplingBenchRow['nucleus']
        out.push({
          rows: kind,
          case: c.name,
          logprobs,
          beforeP50Ms: percentile(old.ms, 0.5),
          beforeP90Ms: percentile(old.ms, 0.9),
          afterP50Ms: percentile(now.ms, 0.5),
          afterP90Ms: percentile(now.ms, 0.9),
          mismatches: old.ids.filter((id, i) => id !== now.ids[i]).length,
          ...(params.topP < 1 && params.topK === 0 ? { nucleus } : {}),
        })
      }
    }
  }
  return out
}
