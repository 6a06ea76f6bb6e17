import ort from 'onnxruntime-node'
import t from 'tap'
import { TINY_CONFIG } from '../../../src/builder/tiny.js'
import { runVisualTokenizer, type VisualTokenizerSession } from '../../../src/engine/images/visual-tokenizer.js'

const config = TINY_CONFIG
// 2 × 3 positions = a 4 × 6 patch grid.
const patches = new Float32Array(24 * 588)

/** A session that records its feeds and answers with the given output. */
function fakeSession(codes: ort.Tensor | undefined) {
  const feeds: ort.InferenceSession.FeedsType[] = []
  const session: VisualTokenizerSession = {
    run: async (f) => {
      feeds.push(f)
      return Object.fromEntries(codes === undefined ? [] : [['codes', codes]])
    },
  }
  return { session, feeds }
}

const int64Codes = (values: number[], dims: number[]) =>
  new ort.Tensor('int64', BigInt64Array.from(values, BigInt), dims)

t.test('the graph is fed the patches and the patch grid, and its codes come back as Int32Array', async (t) => {
  const values = Array.from({ length: 6 * 8 }, (_, i) => (i * 37) % 512)
  const { session, feeds } = fakeSession(int64Codes(values, [6, 8]))
  const tokens = await runVisualTokenizer(session, config, patches, 2, 3)
  t.same({ rows: tokens.rows, cols: tokens.cols, codes: Array.from(tokens.codes) }, { rows: 2, cols: 3, codes: values })
  t.ok(tokens.codes instanceof Int32Array)
  const fed = feeds[0] as ort.InferenceSession.FeedsType
  t.same(fed.pixel_patches?.dims, [24, 588])
  t.equal(fed.pixel_patches?.data, patches, 'the patches are fed without a copy')
  t.same(fed.grid_hw?.dims, [2])
  t.same(Array.from(fed.grid_hw?.data as BigInt64Array), [4n, 6n])
})

t.test('codes of the wrong shape are MODEL_GRAPH_MISMATCH naming both shapes', async (t) => {
  const { session } = fakeSession(int64Codes(new Array(5 * 8).fill(0), [5, 8]))
  await t.rejects(runVisualTokenizer(session, config, patches, 2, 3), {
    code: 'MODEL_GRAPH_MISMATCH',
    message: 'visual_tokenizer.onnx: output codes has shape [5, 8], expected [6, 8]',
  })
  const flat = fakeSession(int64Codes(new Array(48).fill(0), [48]))
  await t.rejects(runVisualTokenizer(flat.session, config, patches, 2, 3), { code: 'MODEL_GRAPH_MISMATCH' })
})

t.test('a code outside the sub-codebook is MODEL_GRAPH_MISMATCH naming the position', async (t) => {
  const values = new Array(48).fill(0)
  values[13] = 512
  await t.rejects(runVisualTokenizer(fakeSession(int64Codes(values, [6, 8])).session, config, patches, 2, 3), {
    code: 'MODEL_GRAPH_MISMATCH',
    message: 'visual_tokenizer.onnx: output codes[1][5] is 512, outside [0, 512)',
  })
  values[13] = -1
  await t.rejects(runVisualTokenizer(fakeSession(int64Codes(values, [6, 8])).session, config, patches, 2, 3), {
    code: 'MODEL_GRAPH_MISMATCH',
  })
})

t.test('codes of another type, or no codes output, are MODEL_GRAPH_MISMATCH', async (t) => {
  const floats = new ort.Tensor('float32', new Float32Array(48), [6, 8])
  await t.rejects(runVisualTokenizer(fakeSession(floats).session, config, patches, 2, 3), {
    code: 'MODEL_GRAPH_MISMATCH',
    message: 'visual_tokenizer.onnx: output codes has type float32, expected int64',
  })
  await t.rejects(runVisualTokenizer(fakeSession(undefined).session, config, patches, 2, 3), {
    code: 'MODEL_GRAPH_MISMATCH',
  })
})

t.test('a failed run names the shapes that were fed', async (t) => {
  const session: VisualTokenizerSession = { run: () => Promise.reject(new Error('kernel failed')) }
  await t.rejects(runVisualTokenizer(session, config, patches, 2, 3), {
    message: 'visual_tokenizer.onnx failed on pixel_patches float32 [24, 588], grid_hw [4, 6]: kernel failed',
  })
})

t.test('patches that do not fill the grid are a RangeError before anything runs', async (t) => {
  const { session, feeds } = fakeSession(undefined)
  await t.rejects(runVisualTokenizer(session, config, new Float32Array(588), 2, 3), RangeError)
  t.equal(feeds.length, 0)
})
