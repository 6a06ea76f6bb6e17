/** The "did you mean" arithmetic: edit distance with swaps, and when a hint is given at all. */
import t from 'tap'
import { closest, editDistance } from '../../src/cli/closest.js'

t.test('edit distance counts insertions, deletions, substitutions and neighbour swaps as one edit each', async (t) => {
  t.equal(editDistance('', ''), 0)
  t.equal(editDistance('', 'abc'), 3)
  t.equal(editDistance('serve', 'serve'), 0)
  t.equal(editDistance('srve', 'serve'), 1)
  t.equal(editDistance('max-num-seq', 'max-num-seqs'), 1)
  t.equal(editDistance('port', 'pert'), 1)
  t.equal(editDistance('prot', 'port'), 1)
  t.equal(editDistance('kitten', 'sitting'), 3)
})

t.test('the closest flag is named when it is near, leading dashes not counted', async (t) => {
  const flags = ['--port', '--host', '--max-num-seqs', '--max-waiting']
  t.equal(closest('--max-num-seq', flags), '--max-num-seqs')
  t.equal(closest('--prot', flags), '--port')
  t.equal(closest('-port', flags), '--port')
  t.equal(closest('--bogus', flags), undefined)
  t.equal(closest('--x', flags), undefined)
  t.equal(closest('--port', []), undefined)
})

t.test('a tie goes to the earlier candidate', async (t) => {
  t.equal(closest('--ab', ['--aa', '--bb']), '--aa')
})
