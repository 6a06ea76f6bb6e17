/**
 * Range checks for `SamplingParams`. Each refusal names the request field (`top_p`, not `topP`)
 * as its `param`: the fields are OpenAI's, on every endpoint that samples.
 */
import type { SamplingParams } from '../types.js'
import { KelixError } from '../../errors/kelix-error.js'

/** The most alternatives OpenAI allows in `top_logprobs`. */
export const MAX_TOP_LOGPROBS = 20

/** The bias at which a token is banned (−) or forced (+). */
export const BIAS_LIMIT = 100

function fail(param: string, detail: string): never {
  throw new KelixError('invalid_value', detail, { param })
}

/** `min <= x <= max`, false for NaN; `openLow` excludes `min`. */
function inRange(x: number, min: number, max: number, openLow = false): boolean {
  return (openLow ? x > min : x >= min) && x <= max
}

function checkRange(field: string, x: number, min: number, max: number, openLow = false): void {
  if (!inRange(x, min, max, openLow)) fail(field, `${field} must be in ${openLow ? '(' : '['}${min}, ${max}], got ${x}`)
}

function checkLogitBias(bias: ReadonlyMap<number, number>, vocabSize: number | undefined): void {
  for (const [id, value] of bias) {
    const limit = vocabSize ?? Number.MAX_SAFE_INTEGER
    if (!Number.isInteger(id) || id < 0 || id >= limit) {
      const range = vocabSize === undefined ? 'an integer >= 0' : `an integer in [0, ${vocabSize})`
      fail('logit_bias', `logit_bias keys must be token ids, ${range}, got ${id}`)
    }
    if (!inRange(value, -BIAS_LIMIT, BIAS_LIMIT)) {
      fail('logit_bias', `logit_bias[${id}] must be in [${-BIAS_LIMIT}, ${BIAS_LIMIT}], got ${value}`)
    }
  }
}

/**
 * Throws `KelixError('invalid_value')` naming the first field out of range:
 * temperature [0, 2], top_p (0, 1], top_k an integer >= 0, min_p [0, 1], presence_penalty and
 * frequency_penalty [-2, 2], repetition_penalty (0, 2], logit_bias ids integers >= 0 (below
 * `vocabSize` when given) with values [-100, 100], top_logprobs an integer in [0, 20], seed an integer.
 */
export function validateSamplingParams(p: SamplingParams, vocabSize?: number): void {
  checkRange('temperature', p.temperature, 0, 2)
  checkRange('top_p', p.topP, 0, 1, true)
  if (!Number.isInteger(p.topK) || p.topK < 0) fail('top_k', `top_k must be an integer >= 0, got ${p.topK}`)
  checkRange('min_p', p.minP, 0, 1)
  checkRange('presence_penalty', p.presencePenalty, -2, 2)
  checkRange('frequency_penalty', p.frequencyPenalty, -2, 2)
  checkRange('repetition_penalty', p.repetitionPenalty, 0, 2, true)
  checkLogitBias(p.logitBias, vocabSize)
  const n = p.topLogprobs
  if (n !== undefined && (!Number.isInteger(n) || n < 0 || n > MAX_TOP_LOGPROBS)) {
    fail('top_logprobs', `top_logprobs must be an integer in [0, ${MAX_TOP_LOGPROBS}], got ${n}`)
  }
  if (p.seed !== undefined && !Number.isInteger(p.seed)) fail('seed', `seed must be an integer, got ${p.seed}`)
}
