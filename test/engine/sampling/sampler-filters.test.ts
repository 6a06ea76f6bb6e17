import t from 'tap'
import { draws, fromProbs, histogram, params } from './fixtures/sampling.js'

// Sorted: id 3 (0.4), id 1 (0.3), id 2 (0.15), then three ids of 0.05.
const known = fromProbs([0.05, 0.3, 0.15, 0.4, 0.05, 0.05])

const ids = (counts: Array<[number, number]>) => counts.map(([id]) => id)

t.test('without filters every id of the known distribution occurs', async (t) => {
  t.same(ids(histogram(draws(params(), known, 1, 1000))), [0, 1, 2, 3, 4, 5])
})

t.test('top_p 0.5 only returns the nucleus {3, 1}, and both of its members', async (t) => {
  t.same(ids(histogram(draws(params({ topP: 0.5 }), known, 1, 1000))), [1, 3])
})

t.test('top_p 0.8 adds the third most likely id to the nucleus', async (t) => {
  t.same(ids(histogram(draws(params({ topP: 0.8 }), known, 1, 1000))), [1, 2, 3])
})

t.test('min_p 0.5 only returns ids with at least half the top probability', async (t) => {
  t.same(ids(histogram(draws(params({ minP: 0.5 }), known, 1, 1000))), [1, 3])
})

t.test('min_p 0.3 keeps 0.15 but drops 0.05', async (t) => {
  t.same(ids(histogram(draws(params({ minP: 0.3 }), known, 1, 1000))), [1, 2, 3])
})

t.test('top_k 2 only returns the two most likely ids', async (t) => {
  t.same(ids(histogram(draws(params({ topK: 2 }), known, 1, 1000))), [1, 3])
})

t.test('min_p 1 leaves only the most likely id', async (t) => {
  t.same(histogram(draws(params({ minP: 1 }), known, 1, 1000)), [[3, 1000]])
})

t.test('top_k larger than the range changes nothing', async (t) => {
  t.same(draws(params({ topK: 50 }), known, 9, 300), draws(params(), known, 9, 300))
})

const frequencies = (ids: number[], n: number) => {
  const counts = new Array<number>(n).fill(0)
  for (const id of ids) counts[id] = (counts[id] ?? 0) + 1
  return counts.map((c) => c / ids.length)
}

/** The ids whose observed frequency is not within `tolerance` of the expected probability. */
const outliers = (observed: number[], expected: number[], tolerance: number) =>
  observed.flatMap((f, i) => (Math.abs(f - expected[i]!) < tolerance ? [] : [`id ${i}: ${f} vs ${expected[i]}`]))

t.test('at temperature 1 the frequencies over 20000 draws are within 2% of a 3-way distribution', async (t) => {
  const probs = [0.5, 0.3, 0.2]
  t.same(outliers(frequencies(draws(params(), fromProbs(probs), 2024, 20000), 3), probs, 0.02), [])
})

t.test('at temperature 0.5 the frequencies follow the squared, renormalised distribution', async (t) => {
  const squared = [0.25, 0.09, 0.04].map((p) => p / 0.38)
  t.same(
    outliers(
      frequencies(draws(params({ temperature: 0.5 }), fromProbs([0.5, 0.3, 0.2]), 2025, 20000), 3),
      squared,
      0.02,
    ),
    [],
  )
})

t.test('after top_p the nucleus is renormalised: 4 to 3 between ids 3 and 1', async (t) => {
  const f = frequencies(draws(params({ topP: 0.5 }), known, 3, 20000), 6)
  t.same(outliers(f, [0, 3 / 7, 0, 4 / 7, 0, 0], 0.02), [])
})
