import t from 'tap'
import { Rng } from '../../../src/engine/sampling/rng.js'
import { Sampler } from '../../../src/engine/sampling/sampler.js'
import { TokenHistory } from '../../../src/engine/sampling/token-history.js'
import { GREEDY } from '../../../src/engine/types.js'
import { draws, histogram, params, randomRow, row, sampleOnce } from './fixtures/sampling.js'

t.test('greedy picks the argmax and the lowest id among equal maxima', async (t) => {
  t.equal(sampleOnce(GREEDY, row([1, 3, 2, 0])).id, 1)
  t.equal(sampleOnce(GREEDY, row([1, 3, 3, 2])).id, 1)
  t.equal(sampleOnce(GREEDY, row([4, 4, 4])).id, 0)
})

t.test('top_k 1 picks exactly what greedy picks for many rows and any temperature', async (t) => {
  const rng = new Rng(3)
  let checked = 0
  for (let trial = 0; trial < 100; trial++) {
    // Integer logits make ties common, so the tie rule is exercised too.
    const logits = randomRow(rng, 500, trial % 2 === 0)
    const greedy = sampleOnce(GREEDY, logits).id
    for (const temperature of [0.1, 0.7, 1, 2]) {
      t.equal(sampleOnce(params({ topK: 1, temperature }), logits, new TokenHistory(), trial).id, greedy)
      checked++
    }
  }
  t.equal(checked, 400)
})

t.test('logit_bias -100 never picks the banned, otherwise most likely, token in 1000 draws', async (t) => {
  const logits = row([0, 1, 0.5, 6, 1, 0.2])
  const banned = params({ logitBias: new Map([[3, -100]]), temperature: 2 })
  t.equal(
    draws(params(), logits, 1, 1000).filter((id) => id === 3).length > 900,
    true,
    'id 3 dominates without the ban',
  )
  t.equal(draws(banned, logits, 1, 1000).filter((id) => id === 3).length, 0)
  t.equal(sampleOnce({ ...GREEDY, logitBias: new Map([[3, -100]]) }, logits).id, 1)
})

t.test('logit_bias +100 picks the forced token in every one of 1000 draws', async (t) => {
  const logits = row([0, 1, 0.5, 6, 1, -20])
  t.same(histogram(draws(params({ logitBias: new Map([[5, 100]]), temperature: 2 }), logits, 1, 1000)), [[5, 1000]])
  t.equal(sampleOnce({ ...GREEDY, logitBias: new Map([[5, 100]]) }, logits).id, 5)
})

t.test('two forced tokens share the draw by their own logits', async (t) => {
  const logits = row([0, 1, 0.5, 6, 1, -20])
  const ids = draws(
    params({
      logitBias: new Map([
        [1, 100],
        [2, 100],
      ]),
    }),
    logits,
    4,
    1000,
  )
  t.same(
    histogram(ids).map(([id]) => id),
    [1, 2],
  )
})

t.test('the allowed range is respected even when the global argmax lies outside it', async (t) => {
  const logits = row([10, 9, 0, 1, 0.5, 8])
  const history = new TokenHistory()
  t.equal(new Sampler(GREEDY, 6).sample(logits, 2, 5, history, new Rng(0)).id, 3)
  const sampler = new Sampler(params({ temperature: 2 }), 6)
  const rng = new Rng(5)
  const ids = Array.from({ length: 1000 }, () => sampler.sample(logits, 2, 5, history, rng).id)
  t.same(
    histogram(ids).map(([id]) => id),
    [2, 3, 4],
  )
})

t.test('a forcing bias on an id outside the range has no effect inside it', async (t) => {
  const logits = row([10, 9, 0, 1, 0.5, 8])
  const sampler = new Sampler({ ...GREEDY, logitBias: new Map([[0, 100]]) }, 6)
  t.equal(sampler.sample(logits, 2, 5, new TokenHistory(), new Rng(0)).id, 3)
})

t.test('banning every id of the range falls back to the unbiased row', async (t) => {
  const logits = row([10, 0, 2, 1])
  const bias = new Map([
    [1, -100],
    [2, -100],
    [3, -100],
  ])
  const sampler = new Sampler({ ...GREEDY, logitBias: bias, topLogprobs: 1 }, 4)
  const result = sampler.sample(logits, 1, 4, new TokenHistory(), new Rng(0))
  t.equal(result.id, 2)
  t.equal(result.top?.[0]?.id, 2)
})

t.test('NaN logits are never chosen and +Infinity is treated as the largest logit', async (t) => {
  t.equal(sampleOnce(GREEDY, row([Number.NaN, 1, 2])).id, 2)
  t.same(histogram(draws(params(), row([Number.NaN, 0, Infinity, 3]), 2, 100)), [[2, 100]])
})

t.test('a range outside the row is a programming error', async (t) => {
  const sampler = new Sampler(GREEDY, 4)
  t.throws(() => sampler.sample(row([1, 2, 3, 4]), 2, 2, new TokenHistory(), new Rng(0)), RangeError)
  t.throws(() => sampler.sample(row([1, 2, 3, 4]), 0, 5, new TokenHistory(), new Rng(0)), RangeError)
})
