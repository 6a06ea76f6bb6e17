import t from 'tap'
import { TokenHistory } from '../../../src/engine/sampling/token-history.js'
import { GREEDY, type SamplingParams } from '../../../src/engine/types.js'
import { row, sampleOnce } from './fixtures/sampling.js'

const greedy = (over: Partial<SamplingParams>) => ({ ...GREEDY, ...over })

const generated = (ids: number[], prompt: number[] = []) => {
  const h = new TokenHistory(prompt)
  for (const id of ids) h.add(id)
  return h
}

t.test('repetition penalty divides a positive logit of a prompt id and moves the argmax', async (t) => {
  const logits = row([2, 1.8, -1, -1.1])
  t.equal(sampleOnce(greedy({}), logits, generated([], [0])).id, 0)
  // 2 / 1.2 = 1.667 < 1.8
  t.equal(sampleOnce(greedy({ repetitionPenalty: 1.2 }), logits, generated([], [0])).id, 1)
  // 2 / 1.05 = 1.905 > 1.8
  t.equal(sampleOnce(greedy({ repetitionPenalty: 1.05 }), logits, generated([], [0])).id, 0)
})

t.test('repetition penalty multiplies a negative logit of a generated id', async (t) => {
  const logits = row([-1, -1.1, -5])
  // -1 × 1.2 = -1.2 < -1.1
  t.equal(sampleOnce(greedy({ repetitionPenalty: 1.2 }), logits, generated([0])).id, 1)
})

t.test('a repetition penalty below 1 favours seen ids', async (t) => {
  const logits = row([2, 1.8])
  // 1.8 / 0.8 = 2.25 > 2
  t.equal(sampleOnce(greedy({ repetitionPenalty: 0.8 }), logits, generated([1])).id, 1)
})

t.test('presence penalty subtracts once, however often the id was generated', async (t) => {
  const logits = row([2, 1.5])
  t.equal(sampleOnce(greedy({ presencePenalty: 0.6 }), logits, generated([0])).id, 1)
  t.equal(sampleOnce(greedy({ presencePenalty: 0.4 }), logits, generated([0])).id, 0)
  t.equal(sampleOnce(greedy({ presencePenalty: 0.4 }), logits, generated([0, 0, 0, 0])).id, 0)
})

t.test('frequency penalty subtracts once per occurrence', async (t) => {
  const logits = row([2, 1.5, 1.3])
  // 2 − 3 × 0.25 = 1.25, 1.5 − 0.25 = 1.25, 1.3 untouched
  t.equal(sampleOnce(greedy({ frequencyPenalty: 0.25 }), logits, generated([0, 0, 0, 1])).id, 2)
  t.equal(sampleOnce(greedy({ frequencyPenalty: 0.25 }), logits, generated([0, 1])).id, 0)
})

t.test('negative presence penalty favours generated ids', async (t) => {
  t.equal(sampleOnce(greedy({ presencePenalty: -1 }), row([2, 1.5]), generated([1])).id, 1)
})

t.test('presence and frequency penalties ignore prompt ids', async (t) => {
  const logits = row([2, 1.5])
  t.equal(sampleOnce(greedy({ presencePenalty: 2, frequencyPenalty: 2 }), logits, generated([], [0])).id, 0)
})

t.test('the penalties stack in order: bias, then repetition, then presence and frequency', async (t) => {
  // id 0: (1 + 1) / 2 − 0.5 − 0.1 = 0.4; id 1: 0.5 → argmax 1. Bias after the division would give 0.9, presence before it 0.7.
  const p = greedy({ logitBias: new Map([[0, 1]]), repetitionPenalty: 2, presencePenalty: 0.5, frequencyPenalty: 0.1 })
  t.equal(sampleOnce(p, row([1, 0.5]), generated([0])).id, 1)
})
