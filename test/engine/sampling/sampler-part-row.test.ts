/** A logits row that holds one vocabulary part (ids from `firstId`) samples exactly like the whole row. */
import t from 'tap'
import { Rng } from '../../../src/engine/sampling/rng.js'
import { Sampler } from '../../../src/engine/sampling/sampler.js'
import { TokenHistory } from '../../../src/engine/sampling/token-history.js'
import { params, randomRow } from './fixtures/sampling.js'

const VOCAB = 96
const [LO, HI] = [32, 64]

function history(): TokenHistory {
  const h = new TokenHistory([3, 40, 41])
  for (const id of [40, 45, 45, 70]) h.add(id)
  return h
}

t.test('bias, penalties, draws and logprobs on a part row equal those on the whole row', async (t) => {
  const whole = randomRow(new Rng(1), VOCAB)
  const p = params({
    temperature: 0.8,
    topK: 20,
    repetitionPenalty: 1.3,
    presencePenalty: 0.5,
    frequencyPenalty: 0.2,
    topLogprobs: 5,
    // 50 favoured, 51 banned: ids inside the part; 10 and 80 lie outside it and change nothing.
    logitBias: new Map([
      [50, 3],
      [51, -100],
      [10, 100],
      [80, 100],
    ]),
  })
  const fromWhole = new Sampler(p, VOCAB)
  const fromPart = new Sampler(p, VOCAB)
  const [rngWhole, rngPart] = [new Rng(9), new Rng(9)]
  const part = whole.slice(LO, HI)
  for (let i = 0; i < 50; i++) {
    const expected = fromWhole.sample(whole, LO, HI, history(), rngWhole)
    t.same(fromPart.sample(part, LO, HI, history(), rngPart, LO), expected, `draw ${i}`)
    t.ok(expected.id >= LO && expected.id < HI && expected.id !== 51, `draw ${i} is in the range and not banned`)
  }
})

t.test('a range outside the part row is a programming error', async (t) => {
  const sampler = new Sampler(params(), VOCAB)
  const part = randomRow(new Rng(2), HI - LO)
  t.throws(() => sampler.sample(part, LO - 1, HI, new TokenHistory(), new Rng(0), LO), RangeError)
  t.throws(() => sampler.sample(part, LO, HI + 1, new TokenHistory(), new Rng(0), LO), RangeError)
  t.doesNotThrow(() => sampler.sample(part, LO + 4, HI - 4, new TokenHistory(), new Rng(0), LO))
})
