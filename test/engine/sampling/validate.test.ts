import t from 'tap'
import { KelixError } from '../../../src/errors/kelix-error.js'
import { Sampler } from '../../../src/engine/sampling/sampler.js'
import { validateSamplingParams } from '../../../src/engine/sampling/validate.js'
import { GREEDY, type SamplingParams } from '../../../src/engine/types.js'
import { params } from './fixtures/sampling.js'

const bad: Array<[string, Partial<SamplingParams>, RegExp]> = [
  ['temperature', { temperature: -0.1 }, /^temperature must be in \[0, 2\], got -0.1$/],
  ['temperature', { temperature: 2.5 }, /^temperature must be in \[0, 2\]/],
  ['temperature', { temperature: Number.NaN }, /^temperature must be in \[0, 2\], got NaN$/],
  ['top_p', { topP: 0 }, /^top_p must be in \(0, 1\], got 0$/],
  ['top_p', { topP: 1.01 }, /^top_p must be in \(0, 1\]/],
  ['top_k', { topK: -1 }, /^top_k must be an integer >= 0, got -1$/],
  ['top_k', { topK: 2.5 }, /^top_k must be an integer >= 0, got 2.5$/],
  ['min_p', { minP: 1.5 }, /^min_p must be in \[0, 1\], got 1.5$/],
  ['presence_penalty', { presencePenalty: -2.1 }, /^presence_penalty must be in \[-2, 2\]/],
  ['frequency_penalty', { frequencyPenalty: 3 }, /^frequency_penalty must be in \[-2, 2\], got 3$/],
  ['repetition_penalty', { repetitionPenalty: 0 }, /^repetition_penalty must be in \(0, 2\], got 0$/],
  ['repetition_penalty', { repetitionPenalty: 2.1 }, /^repetition_penalty must be in \(0, 2\]/],
  ['logit_bias value', { logitBias: new Map([[7, 101]]) }, /^logit_bias\[7\] must be in \[-100, 100\], got 101$/],
  ['logit_bias id', { logitBias: new Map([[-1, 5]]) }, /^logit_bias keys must be token ids, an integer >= 0, got -1$/],
  ['logit_bias id', { logitBias: new Map([[1.5, 5]]) }, /^logit_bias keys must be token ids/],
  ['top_logprobs', { topLogprobs: 21 }, /^top_logprobs must be an integer in \[0, 20\], got 21$/],
  ['top_logprobs', { topLogprobs: -1 }, /^top_logprobs must be an integer in \[0, 20\]/],
  ['seed', { seed: 1.5 }, /^seed must be an integer, got 1.5$/],
]

/** The offending value as a title shows it: maps as their entries. */
const describe = (over: Partial<SamplingParams>) =>
  Object.values(over)
    .map((v) => (v instanceof Map ? JSON.stringify([...v]) : String(v)))
    .join(', ')

for (const [field, over, message] of bad) {
  t.test(`an out-of-range ${field} (${describe(over)}) is rejected with invalid_value naming it`, async (t) => {
    t.throws(() => validateSamplingParams(params(over)), {
      name: 'KelixError',
      code: 'invalid_value',
      fields: { param: field.split(' ')[0] },
      message,
    })
  })
}

t.test('the defaults and the edges of every range are accepted', async (t) => {
  validateSamplingParams(GREEDY)
  validateSamplingParams(
    params({
      temperature: 2,
      topP: 1,
      topK: 0,
      minP: 1,
      presencePenalty: -2,
      frequencyPenalty: 2,
      repetitionPenalty: 2,
      logitBias: new Map([
        [0, -100],
        [1, 100],
      ]),
      topLogprobs: 20,
      seed: -3,
    }),
  )
  validateSamplingParams(params({ topLogprobs: 0, temperature: 0, minP: 0 }))
  t.pass('no error thrown')
})

t.test('the sampler rejects a logit_bias id outside its vocabulary', async (t) => {
  const err = t.throws(() => new Sampler(params({ logitBias: new Map([[10, 1]]) }), 10))
  t.ok(err instanceof KelixError)
  t.match(err, { code: 'invalid_value', message: 'logit_bias keys must be token ids, an integer in [0, 10), got 10' })
})
