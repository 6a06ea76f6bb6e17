import t from 'tap'
import { Rng, drawSeed, rngForSeed } from '../../../src/engine/sampling/rng.js'

const take = (rng: Rng, n: number, next: (r: Rng) => number) => Array.from({ length: n }, () => next(rng))

t.test('the generator from state 1, 2, 3, 4 gives the published xoshiro128** outputs', async (t) => {
  const rng = Rng.fromState(1, 2, 3, 4)
  t.same(
    take(rng, 10, (r) => r.nextUint32()),
    [11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849, 3729100597, 4258142804],
  )
})

t.test('the same seed gives the same floats and different seeds give different ones', async (t) => {
  const a = take(new Rng(42), 100, (r) => r.nextFloat())
  t.same(
    take(new Rng(42), 100, (r) => r.nextFloat()),
    a,
  )
  t.notSame(
    take(new Rng(43), 100, (r) => r.nextFloat()),
    a,
  )
})

t.test('seeds beyond 32 bits and negative seeds start distinct streams', async (t) => {
  const firsts = [0, 1, 2 ** 32, 1 + 2 ** 32, -1, 2 ** 53 - 1].map((seed) => new Rng(seed).nextUint32())
  t.equal(new Set(firsts).size, firsts.length)
})

t.test('consecutive seeds give unrelated first floats', async (t) => {
  const firsts = Array.from({ length: 1000 }, (_, seed) => new Rng(seed).nextFloat())
  t.equal(new Set(firsts).size, 1000)
  const mean = firsts.reduce((s, x) => s + x, 0) / firsts.length
  t.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean} is near 0.5`)
})

t.test('nextFloat stays in [0, 1) and spreads over the interval', async (t) => {
  const xs = take(new Rng(7), 10000, (r) => r.nextFloat())
  t.equal(xs.filter((x) => x < 0 || x >= 1).length, 0)
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length
  t.ok(Math.abs(mean - 0.5) < 0.01, `mean ${mean} is near 0.5`)
})

t.test('a missing seed is drawn at random as an integer below 2^48', async (t) => {
  const seed = drawSeed()
  t.ok(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 48)
  t.notSame(
    take(rngForSeed(undefined), 4, (r) => r.nextUint32()),
    take(rngForSeed(undefined), 4, (r) => r.nextUint32()),
  )
  t.same(
    take(rngForSeed(5), 4, (r) => r.nextUint32()),
    take(new Rng(5), 4, (r) => r.nextUint32()),
  )
})
