import t from 'tap'
import { Rng } from '../../../src/engine/sampling/rng.js'
import { Sampler } from '../../../src/engine/sampling/sampler.js'
import { SamplerScratch } from '../../../src/engine/sampling/scratch.js'
import { TokenHistory } from '../../../src/engine/sampling/token-history.js'
import { draws, params, randomRow } from './fixtures/sampling.js'

const logits = randomRow(new Rng(1), 1000)

t.test('the same seed gives the same 200 ids on fixed logits', async (t) => {
  const first = draws(params(), logits, 42, 200)
  t.same(draws(params(), logits, 42, 200), first)
  t.ok(new Set(first).size > 20, 'the draws are not all one id')
})

t.test('different seeds give different sequences', async (t) => {
  t.notSame(draws(params(), logits, 1, 200), draws(params(), logits, 2, 200))
})

t.test('a row read from a batch buffer samples like the same row alone, with a shared scratch', async (t) => {
  const vocab = logits.length
  const batch = new Float32Array(3 * vocab)
  batch.set(randomRow(new Rng(2), vocab), 0)
  batch.set(logits, vocab)
  batch.set(randomRow(new Rng(3), vocab), 2 * vocab)
  const scratch = new SamplerScratch(vocab)
  const p = params({ topK: 50, topP: 0.9, minP: 0.01, temperature: 0.8 })
  const batched = [new Sampler(p, vocab, scratch), new Sampler(p, vocab, scratch), new Sampler(p, vocab, scratch)]
  const alone = new Sampler(p, vocab)
  const rngs = [new Rng(7), new Rng(8), new Rng(9)]
  const aloneRng = new Rng(8)
  const history = new TokenHistory()
  for (let step = 0; step < 100; step++) {
    const ids = batched.map(
      (s, b) => s.sample(batch.subarray(b * vocab, (b + 1) * vocab), 0, vocab, history, rngs[b]!).id,
    )
    t.equal(ids[1], alone.sample(logits, 0, vocab, history, aloneRng).id)
  }
})

t.test('sampling leaves the logits row unchanged', async (t) => {
  const copy = Float32Array.from(logits)
  const history = new TokenHistory([1, 2, 3])
  history.add(4)
  const p = params({ logitBias: new Map([[5, 100]]), repetitionPenalty: 1.5, presencePenalty: 1, topLogprobs: 5 })
  new Sampler(p, logits.length).sample(logits, 0, logits.length, history, new Rng(0))
  t.same(logits, copy)
})
