/**
 * Deterministic random weights. Each tensor draws from its own stream, seeded
 * by the model seed and the tensor's name, so adding a tensor never changes
 * the others. Only integer arithmetic and one multiply per value: the bytes are
 * the same on every platform and Node.js version.
 */
export class WeightSource {
  constructor(private readonly seed: number) {}

  /** Uniform values with the given standard deviation, centred on zero. */
  random(name: string, size: number, std: number): Float32Array {
    const next = splitMix32(fnv1a(name) ^ this.seed)
    const halfWidth = std * Math.sqrt(3)
    const out = new Float32Array(size)
    for (let i = 0; i < size; i++) out[i] = (next() / 0x1_0000_0000 * 2 - 1) * halfWidth
    return out
  }

  /** Values around `center` (norm gains: near one, but not exactly, so a test would see them). */
  around(name: string, size: number, center: number, spread: number): Float32Array {
    const out = this.random(name, size, spread)
    for (let i = 0; i < size; i++) out[i] = (out[i] as number) + center
    return out
  }
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  return h >>> 0
}

function splitMix32(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x9e3779b9) >>> 0
    let z = state
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    return (z ^ (z >>> 16)) >>> 0
  }
}
