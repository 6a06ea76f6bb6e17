/** Text-to-image after the token phase: condition → flow-matching denoise (dit.onnx) → vae_decoder.onnx → PNG. */
export { imageSpanLength, padCondition, type PaddedCondition } from './condition.js'
export { denoise, DenoiseJob, denoiseStepBatched, type DenoiseOptions, type ImageGenModel } from './flow-matching.js'
export { decodeImage, decodeImages, encodePng, toRgb } from './image-output.js'
export { gaussianNoise } from './noise.js'
export { shiftSigma, sigmaSchedule } from './schedule.js'
