import t from 'tap'
import { TokenHistory } from '../../../src/engine/sampling/token-history.js'

t.test('generated ids are counted and prompt ids are only seen', async (t) => {
  const h = new TokenHistory([5, 6, 5])
  for (const id of [7, 5, 7, 7]) h.add(id)
  t.same([h.count(5), h.count(6), h.count(7), h.count(8)], [1, 0, 3, 0])
  t.same([h.has(5), h.has(6), h.has(7), h.has(8)], [true, true, true, false])
})

t.test('distinct ids are listed once in order of first appearance', async (t) => {
  const h = new TokenHistory([5, 6, 5])
  for (const id of [7, 5, 7, 7]) h.add(id)
  const generated = Array.from({ length: h.generatedSize }, (_, i) => [h.generatedId(i), h.generatedCount(i)])
  t.same(generated, [
    [7, 3],
    [5, 1],
  ])
  t.same(
    Array.from({ length: h.seenSize }, (_, i) => h.seenId(i)),
    [5, 6, 7],
  )
})
