import t from 'tap'
import { NON_FINITE_CAP, RowScan } from '../../../src/engine/sampling/row-scan.js'

t.test('a scan finds the first maximum, the finite count and where the non-finite entries are', async (t) => {
  const scan = new RowScan().scan(Float32Array.of(-Infinity, 2, 5, -Infinity, 5, 1, -Infinity), 7)
  t.equal(scan.max, 5)
  t.equal(scan.argmax, 2)
  t.equal(scan.finite, 4)
  t.same(Array.from(scan.nonFiniteIds.subarray(0, scan.nonFinite)), [0, 3, 6])
  t.same(
    [0, 1, 2, 3].map((j) => scan.finiteAt(j)),
    [1, 2, 4, 5],
  )
  t.equal(scan.needsMapping, false)
})

t.test('NaN counts as non-finite and, like +∞, asks for the mapped copy', async (t) => {
  const nan = new RowScan().scan(Float32Array.of(1, Number.NaN, 3), 3)
  t.equal(nan.finite, 2)
  t.equal(nan.needsMapping, true)
  t.equal(new RowScan().scan(Float32Array.of(1, Infinity), 2).needsMapping, true)
})

t.test(
  'a row with nothing finite has max −∞ and argmax -1; only the first ids past the cap are recorded',
  async (t) => {
    const scan = new RowScan().scan(new Float32Array(40).fill(-Infinity), 40)
    t.equal(scan.max, -Infinity)
    t.equal(scan.argmax, -1)
    t.equal(scan.finite, 0)
    t.equal(scan.nonFinite, 40)
    t.same(
      Array.from(scan.nonFiniteIds),
      Array.from({ length: NON_FINITE_CAP }, (_, i) => i),
    )
  },
)
