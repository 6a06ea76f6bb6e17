import t from 'tap'
import { Rng } from '../../../src/engine/sampling/rng.js'
import { Sampler } from '../../../src/engine/sampling/sampler.js'
import { TokenHistory } from '../../../src/engine/sampling/token-history.js'
import { GREEDY } from '../../../src/engine/types.js'
import { params, randomRow, row, sampleOnce } from './fixtures/sampling.js'

const close = (a: number | undefined, b: number) => a !== undefined && Math.abs(a - b) < 1e-12

t.test('the chosen id and the top list carry the log-softmax computed by hand', async (t) => {
  const logits = row([1, 2, 3, 0.5])
  // log Σ exp = 3 + log(e^-2 + e^-1 + 1 + e^-2.5)
  const lse = 3 + Math.log(Math.exp(-2) + Math.exp(-1) + 1 + Math.exp(-2.5))
  const result = sampleOnce({ ...GREEDY, topLogprobs: 3 }, logits)
  t.equal(result.id, 2)
  t.ok(close(result.logprob, 3 - lse), `${result.logprob} vs ${3 - lse}`)
  t.same(
    result.top?.map((e) => e.id),
    [2, 1, 0],
  )
  const expected = [3 - lse, 2 - lse, 1 - lse]
  t.same(
    result.top?.map((e, i) => close(e.logprob, expected[i]!)),
    [true, true, true],
  )
})

t.test('the full distribution sums to 1 and the top list is sorted best first', async (t) => {
  const logits = randomRow(new Rng(4), 20)
  const result = sampleOnce(params({ topLogprobs: 20 }), logits, new TokenHistory(), 3)
  const top = result.top ?? []
  t.equal(top.length, 20)
  t.ok(Math.abs(top.reduce((s, e) => s + Math.exp(e.logprob), 0) - 1) < 1e-9)
  t.same(
    top.slice(1).filter((e, i) => e.logprob > top[i]!.logprob),
    [],
  )
  t.ok(close(result.logprob, top.find((e) => e.id === result.id)?.logprob ?? Number.NaN))
})

t.test('logprobs are taken at temperature 1 whatever the sampling temperature', async (t) => {
  const logits = randomRow(new Rng(5), 50)
  const hot = sampleOnce(params({ temperature: 2, topLogprobs: 5 }), logits)
  const greedy = sampleOnce({ ...GREEDY, topLogprobs: 5 }, logits)
  t.same(hot.top, greedy.top)
})

t.test('logprobs describe the allowed range with global ids, after bias, and list no banned id', async (t) => {
  const logits = row([9, 9, 1, 2, 3, 0])
  const bias = new Map([
    [4, -100],
    [2, 1],
  ])
  const sampler = new Sampler({ ...GREEDY, logitBias: bias, topLogprobs: 5 }, 6)
  const result = sampler.sample(logits, 2, 6, new TokenHistory(), new Rng(0))
  // In range after the bias: id 2 → 2, id 3 → 2, id 4 banned, id 5 → 0.
  const lse = Math.log(2 * Math.exp(2) + 1)
  t.equal(result.id, 2)
  t.same(
    result.top?.map((e) => e.id),
    [2, 3, 5],
  )
  t.ok(close(result.top?.[2]?.logprob, -lse))
  t.ok(close(result.logprob, 2 - lse))
})

t.test('top_logprobs 0 reports the chosen logprob with an empty list, undefined reports nothing', async (t) => {
  const logits = row([0, 1])
  const zero = sampleOnce({ ...GREEDY, topLogprobs: 0 }, logits)
  t.same(zero.top, [])
  t.ok(close(zero.logprob, 1 - Math.log(1 + Math.E)))
  t.same(sampleOnce(GREEDY, logits), { id: 1 })
})
