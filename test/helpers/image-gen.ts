/** Conditions for the image-generation tests: deterministic stand-ins for the LLM's hidden states. */
import type { KelixConfig } from '../../src/engine/model-config.js'

/** `length` positions of hidden states [length · hidden], a smooth pattern that `phase` shifts. */
export function spanHidden(config: KelixConfig, length: number, phase: number): Float32Array {
  const hidden = config.llm.hidden_size
  return Float32Array.from(
    { length: length * hidden },
    (_, i) => 2 * Math.sin(0.011 * i + phase) + Math.cos(0.37 * (i % hidden) * (1 + phase)),
  )
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity
  let max = 0
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] as number) - (b[i] as number)))
  return max
}
