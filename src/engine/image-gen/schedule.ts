/**
 * The flow-matching noise schedule (SD3 / SANA): σ runs from 1 (pure noise) to 0 (the image) in
 * `steps` equal steps, each warped by the timestep shift, which spends more steps at high noise:
 *
 *   σᵢ = 1 − i / steps,   σ'ᵢ = shift·σᵢ / (1 + (shift − 1)·σᵢ),   i = 0 … steps
 */

/** The shifted σ for a σ in [0, 1]; shift 1 leaves it unchanged. */
export function shiftSigma(sigma: number, shift: number): number {
  return (shift * sigma) / (1 + (shift - 1) * sigma)
}

/** `steps + 1` values of σ', from exactly 1 down to exactly 0. */
export function sigmaSchedule(steps: number, shift: number): Float64Array {
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`steps must be a positive integer, got ${steps}`)
  if (!(shift > 0)) throw new RangeError(`shift must be positive, got ${shift}`)
  return Float64Array.from({ length: steps + 1 }, (_, i) => shiftSigma(1 - i / steps, shift))
}
