/** The replayed quickselect rounds (nucleus.ts) leave the very range the plain path's rounds leave. */
import t from 'tap'
import { replayRounds } from '../../../src/engine/sampling/nucleus.js'
import { Rng } from '../../../src/engine/sampling/rng.js'
import { SamplerScratch } from '../../../src/engine/sampling/scratch.js'
import { collectFinite, partition } from './fixtures/reference-sampler.js'
import { params } from './fixtures/sampling.js'

function gaussian(rng: Rng): number {
  const u = rng.nextFloat() || Number.MIN_VALUE
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.nextFloat())
}

/** The plain path's candidates after its quickselect went left until `length` remained; undefined if it never does. */
function plainRange(key: Float32Array, length: number): number[] | undefined {
  const order = new Int32Array(key.length)
  let hi = collectFinite(key, key.length, order)
  while (hi > length) hi = partition(order, key, 0, hi)
  return hi === length ? Array.from(order.subarray(0, hi)) : undefined
}

t.test('the replayed range equals the plain path’s, in order, on rows with ties and −∞', async (t) => {
  const rng = new Rng(41)
  const scratch = new SamplerScratch(30_000)
  const failures: string[] = []
  let replayed = 0
  for (let trial = 0; trial < 60; trial++) {
    const n = 5_000 + Math.floor(rng.nextFloat() * 25_000)
    const std = 1.5 + rng.nextFloat() * 2
    const key = Float32Array.from({ length: n }, () => std * gaussian(rng))
    for (let j = 0; j < 20; j++) key[Math.floor(rng.nextFloat() * n)] = 15 + 3 * gaussian(rng)
    // Ties at every pivot (as with bf16 logits) in half the rows; −∞ at the ends or anywhere.
    if (trial % 2 === 0) for (let i = 0; i < n; i++) key[i] = Math.round(key[i]! * 4) / 4
    const masked =
      trial % 3 === 0
        ? [0, 1, n - 1, Math.floor(n / 2)]
        : Array.from({ length: trial % 17 }, () => Math.floor(rng.nextFloat() * n))
    for (const i of masked) key[i] = -Infinity
    // Twice: first with the pivot's candidates guessed from another row, then from this one.
    for (const pass of ['first', 'again']) {
      const range = replayRounds(key, n, params({ topP: 0.9 }), scratch)
      if (range === undefined) continue
      replayed++
      const expected = plainRange(key, range.length)
      if (expected === undefined)
        failures.push(`trial ${trial} ${pass}: the plain path never leaves ${range.length} ids`)
      else if (expected.join() !== Array.from(range.ids.subarray(0, range.length)).join())
        failures.push(`trial ${trial} ${pass}: ranges differ`)
    }
  }
  t.same(failures, [])
  t.ok(replayed >= 80, `${replayed} of 120 replays happened`)
})

t.test('a guess of the pivot’s candidates from the previous row is redone whenever one of them moved', async (t) => {
  const rng = new Rng(42)
  const n = 8_000
  const scratch = new SamplerScratch(n)
  const failures: string[] = []
  // Consecutive rows of one length whose −∞ moves: only the first, or only the middle, or only
  // the last finite id changes from one row to the next.
  const masks = [[0], [5], [0], [n - 1], [n - 3], [n >> 1], [(n >> 1) + 2], [], [0, n - 1], [1, n - 2]]
  for (const [k, mask] of masks.entries()) {
    const key = Float32Array.from({ length: n }, () => 2 * gaussian(rng))
    key[3] = 25
    key[n - 5] = 24
    for (const i of mask) key[i] = -Infinity
    const range = replayRounds(key, n, params({ topP: 0.9 }), scratch)
    if (range === undefined) failures.push(`row ${k}: not replayed`)
    else if (plainRange(key, range.length)?.join() !== Array.from(range.ids.subarray(0, range.length)).join())
      failures.push(`row ${k}: ranges differ`)
  }
  t.same(failures, [])
})

t.test('ties between the pivot and the first, middle and last candidates rank by id', async (t) => {
  const rng = new Rng(43)
  const scratch = new SamplerScratch(10_000)
  const failures: string[] = []
  for (let trial = 0; trial < 20; trial++) {
    const n = 5_000 + trial * 100
    const key = Float32Array.from({ length: n }, () => Math.round(4 * gaussian(rng)) / 2)
    key[7] = 25
    const value = key[n >> 1]!
    key[0] = value
    key[n - 1] = value
    const range = replayRounds(key, n, params({ topP: 0.9 }), scratch)
    if (range === undefined) failures.push(`trial ${trial}: not replayed`)
    else if (plainRange(key, range.length)?.join() !== Array.from(range.ids.subarray(0, range.length)).join())
      failures.push(`trial ${trial}: ranges differ`)
  }
  t.same(failures, [])
})
