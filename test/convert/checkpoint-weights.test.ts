/** Tensors read from a checkpoint piece by piece equal the tensors read whole, transposed or not. */
import t from 'tap'
import { collect } from '../../src/builder/tensor-data.js'
import { Checkpoint } from '../../src/convert/checkpoint.js'
import { CheckpointTensors } from '../../src/convert/checkpoint-weights.js'
import { REFERENCE_CHECKPOINT } from '../helpers/kelix-reference.js'

t.test(
  'pieces of a few rows give the same values as one piece, and as a plain transpose of the whole read',
  async (t) => {
    const checkpoint = await Checkpoint.open(REFERENCE_CHECKPOINT)
    t.teardown(() => checkpoint.close())
    const whole = new CheckpointTensors(checkpoint)
    // 100 values: the [1024, 64] head comes in pieces of one row, a [128, 64] projection in pieces of one row too.
    const small = new CheckpointTensors(checkpoint, undefined, { copy: 100, transpose: 100 })
    const head = 'model.model.output.weight'
    const stored = await checkpoint.read(head)
    for (const [lo, hi] of [
      [0, 512],
      [512, 576],
      [960, 1024],
    ] as const) {
      const expected = new Float32Array(64 * (hi - lo))
      for (let r = lo; r < hi; r++)
        for (let c = 0; c < 64; c++) expected[c * (hi - lo) + (r - lo)] = stored[r * 64 + c] as number
      t.same(await collect(small.transposed(head, [1024, 64], [lo, hi])), expected, `rows [${lo}, ${hi}) in pieces`)
      t.same(await collect(whole.transposed(head, [1024, 64], [lo, hi])), expected, `rows [${lo}, ${hi}) in one piece`)
    }
    const table = 'model.model.tok_embeddings.embed_tokens.weight'
    t.same(
      await collect(small.rows(table, [1024, 64], 100, 300)),
      (await checkpoint.read(table)).subarray(100 * 64, 300 * 64),
    )
    t.same(small.partlyUsed.get(table), { rows: 200, of: 1024 })
  },
)
