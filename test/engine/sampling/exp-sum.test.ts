import t from 'tap'
import { EXP_SUM_ERROR, expSum } from '../../../src/engine/sampling/exp-sum.js'
import { Rng } from '../../../src/engine/sampling/rng.js'
import { randomRow } from './fixtures/sampling.js'

/** The plain path's sum: Math.exp per finite entry, in order. */
function mathExpSum(key: Float32Array, max: number, scale: number): number {
  let sum = 0
  for (const x of key) if (x > -Infinity) sum += Math.exp((x - max) * scale)
  return sum
}

t.test('the fast sum is within 1e-11 of summed Math.exp, far inside its stated bound', async (t) => {
  const rng = new Rng(51)
  const errors: number[] = []
  for (let trial = 0; trial < 40; trial++) {
    const key = randomRow(rng, 1 + Math.floor(rng.nextFloat() * 5000))
    // Spread the values over the whole useful range, down to underflow.
    for (let i = 0; i < key.length; i++) key[i] = key[i]! * (1 + trial * 5)
    if (trial % 4 === 0) key[0] = -Infinity
    const max = key.reduce((m, x) => Math.max(m, x), -Infinity)
    const scale = 1 / (0.3 + 1.7 * rng.nextFloat())
    const exact = mathExpSum(key, max, scale)
    errors.push(Math.abs(expSum(key, key.length, max, scale) - exact) / exact)
  }
  const worst = Math.max(...errors)
  t.ok(worst < 1e-11, `worst relative error ${worst}`)
  t.ok(worst < EXP_SUM_ERROR)
})

t.test('single terms follow Math.exp from 0 down past underflow', async (t) => {
  const misses: string[] = []
  for (let z = 0; z > -760; z -= 0.37) {
    const got = expSum(Float32Array.of(z), 1, 0, 1)
    const want = Math.exp(Math.fround(z))
    // Below e^-708 the result is subnormal and loses relative precision; compare absolutely there.
    const ok = want > 1e-300 ? Math.abs(got - want) <= 2e-12 * want : Math.abs(got - want) <= 1e-300
    if (!ok) misses.push(`z ${z}: ${got} vs ${want}`)
  }
  t.same(misses, [])
  t.equal(expSum(Float32Array.of(-Infinity, -Infinity), 2, 0, 1), 0, 'only −∞: an empty sum')
})
