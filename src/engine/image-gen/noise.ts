/**
 * Seeded standard-normal noise for the initial latents: xoshiro128** uniforms (the sampler's Rng)
 * through Box–Muller, so a seed gives the same latents on every run and in every batch.
 */
import { Rng } from '../sampling/rng.js'

/** `count` independent N(0, 1) values drawn from `seed`. */
export function gaussianNoise(seed: number, count: number): Float32Array {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`the noise seed must be a safe integer, got ${seed}`)
  const rng = new Rng(seed)
  const out = new Float32Array(count)
  for (let i = 0; i < count; i += 2) {
    // 1 − u lies in (0, 1], so the logarithm is finite.
    const radius = Math.sqrt(-2 * Math.log(1 - rng.nextFloat()))
    const angle = 2 * Math.PI * rng.nextFloat()
    out[i] = radius * Math.cos(angle)
    if (i + 1 < count) out[i + 1] = radius * Math.sin(angle)
  }
  return out
}
