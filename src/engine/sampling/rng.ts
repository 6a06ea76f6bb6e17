/**
 * Seeded pseudo-random numbers for sampling. Each sequence owns one generator, so a request with a
 * seed draws the same numbers whether it runs alone or batched with others.
 *
 * The generator is xoshiro128** (Blackman and Vigna): 128 bits of state, 32-bit integer arithmetic
 * only (`Math.imul`, shifts), so it is exact and fast in JavaScript.
 */
import { randomInt } from 'node:crypto'

const TWO_32 = 2 ** 32
const TWO_53 = 2 ** 53

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k))

/** splitmix32 finaliser: a bijection on 32-bit words, so distinct seeds give distinct states. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b)
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35)
  return (x ^ (x >>> 16)) >>> 0
}

export class Rng {
  private s0: number
  private s1: number
  private s2: number
  private s3: number

  /**
   * A generator for an integer seed. Any integer JavaScript can hold works, negative or above 2^32:
   * its low and high 32-bit words both enter the state.
   */
  constructor(seed: number) {
    // Every word depends on both halves of the seed (the first output reads only s1), and
    // (s0, s1) determines the seed, so distinct seeds give distinct states.
    const lo = mix32((seed >>> 0) + 0x9e3779b9)
    const hi = mix32((Math.floor(seed / TWO_32) >>> 0) + 0x7f4a7c15)
    this.s0 = lo
    this.s1 = mix32(hi ^ mix32(lo + 0x3c6ef372))
    this.s2 = mix32(this.s1 + 0xdaa66d2b)
    this.s3 = mix32(this.s0 ^ this.s2)
    // An all-zero state would stay zero forever.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1
  }

  /** A generator with the given raw state words, for checking against the reference outputs. */
  static fromState(s0: number, s1: number, s2: number, s3: number): Rng {
    const rng = new Rng(0)
    rng.s0 = s0 >>> 0
    rng.s1 = s1 >>> 0
    rng.s2 = s2 >>> 0
    rng.s3 = s3 >>> 0
    return rng
  }

  /** The next 32-bit output as an unsigned integer in [0, 2^32). */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0
    const t = this.s1 << 9
    this.s2 ^= this.s0
    this.s3 ^= this.s1
    this.s1 ^= this.s2
    this.s0 ^= this.s3
    this.s2 ^= t
    this.s3 = rotl(this.s3, 11)
    return result
  }

  /** A float in [0, 1) with 53 random bits (two 32-bit outputs). */
  nextFloat(): number {
    const a = this.nextUint32() >>> 5
    const b = this.nextUint32() >>> 6
    return (a * 2 ** 26 + b) / TWO_53
  }
}

/** A fresh random seed for a request that gave none: a non-negative integer below 2^48. */
export function drawSeed(): number {
  return randomInt(0, 2 ** 48 - 1)
}

/** The generator for a request's seed, drawing one when the request has none. */
export function rngForSeed(seed: number | undefined): Rng {
  return new Rng(seed ?? drawSeed())
}
