/**
 * The sampler against its frozen former self (fixtures/reference-sampler.ts): for the same row,
 * parameters and seed, the same ids, draw after draw; logprobs equal within 1e-9.
 */
import t from 'tap'
import { nucleusPaths } from '../../../src/engine/sampling/nucleus.js'
import { Rng } from '../../../src/engine/sampling/rng.js'
import { Sampler } from '../../../src/engine/sampling/sampler.js'
import { TokenHistory } from '../../../src/engine/sampling/token-history.js'
import { GREEDY, type SamplingParams } from '../../../src/engine/types.js'
import { ReferenceSampler } from './fixtures/reference-sampler.js'
import { params, randomRow } from './fixtures/sampling.js'

function gaussian(rng: Rng): number {
  const u = rng.nextFloat() || Number.MIN_VALUE
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.nextFloat())
}

/** An LLM-like row: a Gaussian bulk of std `std` and `outliers` ids from `top` down; one id at −∞. */
function llmRow(rng: Rng, n: number, std: number, top: number, outliers = 30): Float32Array {
  const row = Float32Array.from({ length: n }, () => std * gaussian(rng))
  for (let j = 0; j < outliers; j++)
    row[Math.floor(rng.nextFloat() * n)] = top - 2 * Math.log(1 + j) + 0.5 * gaussian(rng)
  row[Math.floor(rng.nextFloat() * n)] = -Infinity
  return row
}

function history(): TokenHistory {
  const h = new TokenHistory([3, 17, 40, 41])
  for (const id of [40, 45, 45, 70, 3]) h.add(id)
  return h
}

/**
 * Draws `count` ids from both samplers over `[lo, hi)` of `row` (which holds ids from `firstId`)
 * with one seed each; returns the first difference, or '' when there is none.
 */
function compare(
  p: SamplingParams,
  row: Float32Array,
  seed: number,
  count: number,
  range?: { lo: number; hi: number; firstId: number; vocab: number },
): string {
  // Small rows get a larger vocabulary, so that every logit_bias id is valid.
  const { lo, hi, firstId, vocab } = range ?? { lo: 0, hi: row.length, firstId: 0, vocab: Math.max(row.length, 100) }
  const reference = new ReferenceSampler(p, vocab)
  const sampler = new Sampler(p, vocab)
  const [refRng, rng] = [new Rng(seed), new Rng(seed)]
  const h = history()
  for (let draw = 0; draw < count; draw++) {
    const expected = reference.sample(row, lo, hi, h, refRng, firstId)
    const actual = sampler.sample(row, lo, hi, h, rng, firstId)
    const where = `seed ${seed} draw ${draw}`
    if (actual.id !== expected.id) return `${where}: id ${actual.id}, expected ${expected.id}`
    if ((actual.top === undefined) !== (expected.top === undefined)) return `${where}: top list presence differs`
    const actualTop = actual.top?.map((e) => e.id).join() ?? ''
    const expectedTop = expected.top?.map((e) => e.id).join() ?? ''
    if (actualTop !== expectedTop) return `${where}: top ids ${actualTop}, expected ${expectedTop}`
    const values = [
      [actual.logprob, expected.logprob],
      ...(actual.top ?? []).map((e, k) => [e.logprob, expected.top![k]!.logprob]),
    ]
    for (const [a, b] of values) {
      if (a === b) continue
      if (a === undefined || b === undefined || !(Math.abs(a - b) < 1e-9))
        return `${where}: logprob ${a}, expected ${b}`
    }
  }
  return ''
}

const SMALL_PARAMS: Array<Partial<SamplingParams>> = [
  {},
  { temperature: 0 },
  { topK: 1 },
  { temperature: 0.3, topP: 0.9 },
  { temperature: 0.7, topP: 0.5 },
  { temperature: 1.5, topP: 0.95, minP: 0.02 },
  { temperature: 2, topK: 7, topP: 0.8 },
  { topK: 50, minP: 0.1 },
  { minP: 0.05 },
  { temperature: 0.5, minP: 1 },
  { topP: 0.999, topLogprobs: 5 },
  { temperature: 0, topLogprobs: 20 },
  { topLogprobs: 0, topK: 3 },
  { repetitionPenalty: 1.4, presencePenalty: 0.5, frequencyPenalty: 0.3, topP: 0.9 },
  {
    logitBias: new Map([
      [5, 2],
      [9, -100],
      [40, -3],
    ]),
    topP: 0.7,
    topLogprobs: 3,
  },
  {
    logitBias: new Map([
      [12, 100],
      [13, 100],
    ]),
    topP: 0.5,
  },
  { logitBias: new Map([[2, 100]]), temperature: 0 },
]

t.test('small rows, with ties and every parameter family, give the same ids and logprobs', async (t) => {
  const rng = new Rng(31)
  const failures: string[] = []
  for (let trial = 0; trial < 120; trial++) {
    const n = 2 + Math.floor(rng.nextFloat() * 300)
    const row = randomRow(rng, n, trial % 2 === 0)
    if (trial % 5 === 0) for (let i = 0; i < n; i += 4) row[i] = -Infinity
    const over = SMALL_PARAMS[trial % SMALL_PARAMS.length]!
    const diff = compare(params(over), row, trial, 40)
    if (diff !== '')
      failures.push(
        `trial ${trial} n ${n} ${JSON.stringify({ ...over, logitBias: [...(over.logitBias ?? [])] })}: ${diff}`,
      )
  }
  t.same(failures, [])
})

t.test('NaN, +∞ and −∞ in the row are read as the plain path reads them', async (t) => {
  const rng = new Rng(32)
  const failures: string[] = []
  for (let trial = 0; trial < 60; trial++) {
    const row = randomRow(rng, 2000, trial % 3 === 0)
    row[Math.floor(rng.nextFloat() * 2000)] = Number.NaN
    if (trial % 2 === 0) row[Math.floor(rng.nextFloat() * 2000)] = Infinity
    if (trial % 4 === 0) row[Math.floor(rng.nextFloat() * 2000)] = 3.4028234663852886e38
    row[Math.floor(rng.nextFloat() * 2000)] = -Infinity
    const diff = compare(params(SMALL_PARAMS[trial % SMALL_PARAMS.length]!), row, trial, 20)
    if (diff !== '') failures.push(`trial ${trial}: ${diff}`)
  }
  t.same(failures, [])
  t.equal(
    compare(params({ topP: 0.9 }), Float32Array.from([Number.NaN, -Infinity, Number.NaN]), 1, 5),
    '',
    'a row with nothing finite',
  )
})

t.test('LLM-like rows of 20,000 ids give the same ids at temperatures 0.3–2 with top_p, top_k and min_p', async (t) => {
  const rng = new Rng(33)
  const failures: string[] = []
  const temperatures = [0.3, 0.7, 1, 1.3, 2]
  const topPs = [0.5, 0.8, 0.9, 0.95, 0.99]
  for (let trial = 0; trial < 50; trial++) {
    // From nearly all mass in one id (top 30 above a std-2 bulk) to mass spread thinly (std 1, no outliers).
    const shape = trial % 5
    const row = shape === 4 ? llmRow(rng, 20_000, 1, 0, 0) : llmRow(rng, 20_000, 2 + shape * 0.5, 30 - 4 * shape)
    const over: Partial<SamplingParams> = {
      temperature: temperatures[trial % temperatures.length]!,
      topP: topPs[Math.floor(trial / 5) % topPs.length]!,
      ...(trial % 7 === 0 ? { topK: 40 } : {}),
      ...(trial % 3 === 0 ? { minP: 0.05 } : {}),
      ...(trial % 11 === 0 ? { topLogprobs: 5 } : {}),
    }
    const diff = compare(params(over), row, trial, 30)
    if (diff !== '') failures.push(`trial ${trial} ${JSON.stringify(over)}: ${diff}`)
  }
  t.same(failures, [])
})

t.test('LLM-like rows with penalties, logit_bias, ties and part ranges give the same ids', async (t) => {
  const rng = new Rng(34)
  const failures: string[] = []
  for (let trial = 0; trial < 24; trial++) {
    const whole = llmRow(rng, 24_000, 2.5, 18)
    // Ties at the top and in the bulk.
    if (trial % 2 === 0) for (let i = 0; i < whole.length; i += 97) whole[i] = Math.round(whole[i]!)
    const firstId = trial % 4 === 0 ? 0 : 500
    const [lo, hi] = trial % 3 === 0 ? [firstId, 24_000] : [1000 + trial * 37, 21_000 - trial * 11]
    const row = firstId === 0 ? whole : whole.subarray(firstId)
    const over: Partial<SamplingParams> = {
      temperature: 0.6 + (trial % 5) * 0.3,
      topP: [0.9, 0.95, 0.7][trial % 3]!,
      repetitionPenalty: trial % 2 === 0 ? 1.3 : 1,
      presencePenalty: trial % 3 === 1 ? 0.4 : 0,
      logitBias:
        trial % 4 === 1
          ? new Map([
              [lo + 5, 4],
              [lo + 6, -100],
              [hi - 1, 8],
            ])
          : new Map(),
    }
    const diff = compare(params(over), row, trial, 25, { lo, hi, firstId, vocab: 24_000 })
    if (diff !== '') failures.push(`trial ${trial} [${lo}, ${hi}) from ${firstId}: ${diff}`)
  }
  t.same(failures, [])
})

t.test('rows rounded to 1/8 (ties at every pivot, as with bf16 logits) give the same ids', async (t) => {
  const rng = new Rng(37)
  const failures: string[] = []
  for (let trial = 0; trial < 30; trial++) {
    const row = llmRow(rng, 20_000, 2 + (trial % 3) * 0.5, 20 - (trial % 4))
    for (let i = 0; i < row.length; i++) row[i] = Math.round(row[i]! * 8) / 8
    const over = {
      temperature: [1, 0.7, 1.4][trial % 3]!,
      topP: [0.9, 0.8, 0.95, 0.6, 0.99][trial % 5]!,
      minP: trial % 4 === 0 ? 0.02 : 0,
    }
    const diff = compare(params(over), row, trial, 30)
    if (diff !== '') failures.push(`trial ${trial} ${JSON.stringify(over)}: ${diff}`)
  }
  t.same(failures, [])
})

t.test('full-size rows (151,936 ids) give the same ids for the benchmark parameter sets', async (t) => {
  const rng = new Rng(35)
  const sets: Array<Partial<SamplingParams>> = [
    { topP: 0.9 },
    { temperature: 0.7, topP: 0.9 },
    { topK: 50 },
    {},
    { minP: 0.1 },
    { ...GREEDY, topLogprobs: 5 },
  ]
  const failures: string[] = []
  for (const [k, over] of sets.entries()) {
    for (const row of [llmRow(rng, 151_936, 2.5, 20), llmRow(rng, 151_936, 2.5, 17), llmRow(rng, 151_936, 1, 0, 0)]) {
      const diff = compare(params(over), row, k, 6)
      if (diff !== '') failures.push(`${JSON.stringify(over)}: ${diff}`)
    }
  }
  t.same(failures, [])
})

t.test('a target on the edge of a prefix sum takes the closer and the exact total and still agrees', async (t) => {
  const rng = new Rng(36)
  const failures: string[] = []
  const before = { ...nucleusPaths }
  for (let trial = 0; trial < 12; trial++) {
    const row = llmRow(rng, 20_000, 2.5, 20)
    // The plain path's total and the prefix sums of the best ids, at temperature 1.
    let max = -Infinity
    for (const x of row) if (x > max) max = x
    let total = 0
    for (const x of row) if (x > -Infinity) total += Math.exp(x - max)
    const best = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]! || a - b)
    const prefix = best.slice(0, 1 + (trial % 3)).reduce((s, i) => s + Math.exp(row[i]! - max), 0)
    // On the edge: the exact total must decide; a hair above it: the closer total suffices.
    const topP = (prefix / total) * (trial % 2 === 0 ? 1 : 1 + 1e-6)
    const diff = compare(params({ topP }), row, trial, 20)
    if (diff !== '') failures.push(`trial ${trial} top_p ${topP}: ${diff}`)
  }
  t.same(failures, [])
  t.ok(nucleusPaths.upperRangeSum > before.upperRangeSum, 'the sum over the upper range was needed')
  t.ok(nucleusPaths.rowSum > before.rowSum, 'the close sum over the row was needed')
  t.ok(nucleusPaths.exactSum > before.exactSum, 'the exact sum was needed')
  t.ok(nucleusPaths.replayed > before.replayed, 'rounds were replayed')
})
