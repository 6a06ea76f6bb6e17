import t from 'tap'
import { Rng } from '../../../src/engine/sampling/rng.js'
import {
  medianOfThree,
  NucleusSearch,
  nucleusSize,
  selectTop,
  topIndices,
} from '../../../src/engine/sampling/select.js'
import { randomRow } from './fixtures/sampling.js'

/** Indices of `key` by the sampler's order, by a full sort: the reference for partial selection. */
const sorted = (key: Float32Array) => Array.from(key.keys()).sort((a, b) => key[b]! - key[a]! || a - b)
const identity = (n: number) => Int32Array.from({ length: n }, (_, i) => i)
const ascending = (xs: ArrayLike<number>) => Array.from(xs).sort((a, b) => a - b)

t.test('the median of three indices ranks by value, then by the lower index', async (t) => {
  const key = Float32Array.from([1, 3, 3, 2])
  t.equal(medianOfThree(key, 0, 1, 3), 3)
  t.equal(medianOfThree(key, 1, 2, 0), 2, 'of two equal values, the higher index ranks after')
  t.equal(medianOfThree(key, 2, 1, 3), 2)
})

t.test('top-k selection keeps exactly the k best of rows full of ties and skips non-finite entries', async (t) => {
  const rng = new Rng(11)
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + Math.floor(rng.nextFloat() * 300)
    const k = 1 + Math.floor(rng.nextFloat() * n)
    const key = randomRow(rng, n, true)
    if (trial % 4 === 0) for (let i = 0; i < n; i += 3) key[i] = -Infinity
    const finite = sorted(key).filter((i) => key[i]! > -Infinity)
    const order = new Int32Array(n)
    const size = selectTop(key, n, k, order)
    t.equal(size, Math.min(k, finite.length))
    t.same(ascending(order.subarray(0, size)), ascending(finite.slice(0, k)), `n ${n} k ${k}`)
  }
})

t.test('top-k selection handles rows sorted worst first', async (t) => {
  const key = Float32Array.from({ length: 1000 }, (_, i) => i)
  const order = new Int32Array(1000)
  t.equal(selectTop(key, 1000, 10, order), 10)
  t.same(ascending(order.subarray(0, 10)), [990, 991, 992, 993, 994, 995, 996, 997, 998, 999])
})

t.test('weighted quickselect returns the smallest prefix of best indices that reaches the target', async (t) => {
  const rng = new Rng(12)
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + Math.floor(rng.nextFloat() * 300)
    const key = randomRow(rng, n, true)
    const weights = Float64Array.from(key, (x) => Math.exp(x))
    const total = weights.reduce((s, w) => s + w, 0)
    const target = (0.05 + 0.9 * rng.nextFloat()) * total
    const ref = sorted(key)
    let expected = 0
    for (let acc = 0; acc < target && expected < n; expected++) acc += weights[ref[expected]!]!
    const order = identity(n)
    const size = nucleusSize(order, key, weights, n, target)
    t.equal(size, expected, `n ${n}`)
    t.same(ascending(order.subarray(0, size)), ascending(ref.slice(0, size)))
  }
})

t.test('weighted quickselect with a target known only within an interval answers or says -1', async (t) => {
  // Weights 4, 3, 2, 1 (keys in the same order): prefix sums 4, 7, 9, 10.
  const key = Float32Array.from([4, 3, 2, 1])
  const weights = Float64Array.from([4, 3, 2, 1])
  const search = (m: number) => new NucleusSearch(identity(m), key, weights, m)
  t.equal(search(4).run(5, 6.5), 2, 'every target in [5, 6.5] needs the 2 best')
  t.equal(search(4).run(6.5, 7.5), -1, 'the prefix 7 lies inside [6.5, 7.5]')
  t.equal(search(4).run(7), 2, 'a point target as before')
  const narrowed = search(4)
  t.equal(narrowed.run(3.5, 4.5), -1, 'the prefix 4 lies inside [3.5, 4.5]')
  t.equal(narrowed.run(4.2, 4.3), 2, 'run again with a narrower interval, it answers')
})

t.test('a search narrowed in steps ends where a search with the final target does, in the same order', async (t) => {
  const rng = new Rng(13)
  for (let trial = 0; trial < 100; trial++) {
    const n = 2 + Math.floor(rng.nextFloat() * 200)
    const key = randomRow(rng, n, trial % 2 === 0)
    const weights = Float64Array.from(key, (x) => Math.exp(x))
    const target = (0.05 + 0.9 * rng.nextFloat()) * weights.reduce((s, w) => s + w, 0)
    const direct = identity(n)
    const size = nucleusSize(direct, key, weights, n, target)
    const steps = identity(n)
    const search = new NucleusSearch(steps, key, weights, n)
    let stepped = -1
    for (const width of [0.5, 0.1, 0.01, 0]) {
      stepped = search.run(target * (1 - width), target * (1 + width))
      if (stepped >= 0) break
    }
    t.equal(stepped, size)
    t.same(Array.from(steps.subarray(0, size)), Array.from(direct.subarray(0, size)))
  }
})

t.test('top indices come best first with ties broken by the lower index', async (t) => {
  const key = Float32Array.from([1, 5, -Infinity, 5, 2, 7])
  const out = new Int32Array(4)
  t.equal(topIndices(key, 6, 4, out), 4)
  t.same(Array.from(out), [5, 1, 3, 4])
  t.equal(topIndices(key, 6, 0, out), 0)
  const wide = new Int32Array(20)
  t.equal(topIndices(key, 6, 20, wide), 5)
  t.same(Array.from(wide.subarray(0, 5)), [5, 1, 3, 4, 0])
})
