/** Token sampling: one `Sampler`, `TokenHistory` and `Rng` per sequence. */
export { Rng, drawSeed, rngForSeed } from './rng.js'
export { Sampler, type SampleResult } from './sampler.js'
export { SamplerScratch } from './scratch.js'
export { TokenHistory } from './token-history.js'
export { MAX_TOP_LOGPROBS, validateSamplingParams } from './validate.js'
export type { TopLogprob } from './logprobs.js'
