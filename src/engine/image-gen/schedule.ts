/**
 * The flow-matching noise schedule (SD3 / SANA, diffusers' FlowMatchEulerDiscreteScheduler as Kelix
 * sets it up): σ runs from 1 (pure noise) to 0 (the image) in `steps` equal steps, each warped by
 * the timestep shift, which spends more steps at high noise:
 *
 *   σᵢ = linspace(1, 1/steps, steps)ᵢ = 1 − i / steps,   σ'ᵢ = shift·σᵢ / (1 + (shift − 1)·σᵢ),   i = 0 … steps−1,   σ'_steps = 0
 *
 * Every value is rounded to float32 after each operation, as the reference computes it (numpy and
 * torch in float32): the DiT truncates 1000·σ' to an integer, so one ulp can move a timestep.
 */

const f32 = Math.fround

/** The shifted σ for a σ in [0, 1], in float32 arithmetic; shift 1 leaves it unchanged. */
export function shiftSigma(sigma: number, shift: number): number {
  const s = f32(sigma)
  return f32(f32(shift * s) / f32(1 + f32((shift - 1) * s)))
}

/** `steps + 1` float32 values of σ', from exactly 1 down to exactly 0. */
export function sigmaSchedule(steps: number, shift: number): Float32Array {
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`steps must be a positive integer, got ${steps}`)
  if (!(shift > 0)) throw new RangeError(`shift must be positive, got ${shift}`)
  const sigmas = new Float32Array(steps + 1)
  const unshifted = linspace(1, 1 / steps, steps)
  for (let i = 0; i < steps; i++) sigmas[i] = shiftSigma(unshifted[i] as number, shift)
  return sigmas
}

/** numpy's `linspace(start, stop, count)` in float64, bit for bit: i·step + start, the last value exactly `stop`. */
function linspace(start: number, stop: number, count: number): Float64Array {
  const step = (stop - start) / (count - 1)
  const values = Float64Array.from({ length: count }, (_, i) => i * step + start)
  if (count > 1) values[count - 1] = stop
  return values
}
