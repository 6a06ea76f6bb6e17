/**
 * HostKvStore without a model: calls are simulated by writing, for each new
 * position, a value that encodes (sequence, position, layer/part, head, dim);
 * every gather must then feed exactly those values in slots [0, cached) of
 * each row, whichever home (own arrays or the decode batch) a sequence is in.
 */
import ort from 'onnxruntime-node'
import t, { type Test } from 'tap'
import type { KelixConfig } from '../../src/engine/model-config.js'
import { SLOT_BUCKET } from '../../src/engine/kv/decode-batch.js'
import { HostKvStore } from '../../src/engine/kv/host-kv-store.js'
import type { BatchRow, PastFeeds } from '../../src/engine/kv/kv-store.js'

const LAYERS = 2
const HEADS = 2
const DIM = 4
const config = {
  llm: { num_layers: LAYERS, num_key_value_heads: HEADS, head_dim: DIM, kv_dtype: 'float32' },
} as unknown as KelixConfig
const names = Array.from({ length: LAYERS * 2 }, (_, i) => `${i >> 1}.${i % 2 === 0 ? 'key' : 'value'}`)
const seqNumber = (seqId: string) => seqId.charCodeAt(0)
const value = (seqId: string, position: number, index: number, head: number, d: number) =>
  Math.fround(seqNumber(seqId) * 1000 + position + index / 10 + head / 100 + d / 1000)

/** What the graph would return for this call: each row's new positions, garbage in padding slots. */
function outputs(past: PastFeeds, seq: number, kind: 'delta' | 'present'): ort.InferenceSession.OnnxValueMapType {
  const time = kind === 'present' ? past.pastLength + seq : seq
  const at = kind === 'present' ? past.pastLength : 0
  const result: Record<string, ort.Tensor> = {}
  names.forEach((name, index) => {
    const data = new Float32Array(past.rows.length * HEADS * time * DIM).fill(-7)
    past.rows.forEach((row, r) => {
      for (let h = 0; h < HEADS; h++) {
        for (let j = 0; j < row.newSlots; j++) {
          for (let d = 0; d < DIM; d++)
            data[((r * HEADS + h) * time + at + j) * DIM + d] = value(
              row.seqId,
              (past.cached[r] as number) + j,
              index,
              h,
              d,
            )
        }
      }
    })
    result[`${kind === 'present' ? 'present' : 'present_delta'}.${name}`] = new ort.Tensor('float32', data, [
      past.rows.length,
      HEADS,
      time,
      DIM,
    ])
  })
  return result
}

/** Checks the fed past against the encoded values and the expected lengths; returns the rows' order. */
function check(t: Test, past: PastFeeds, lengths: Record<string, number>): string[] {
  let wrong = 0
  past.rows.forEach((row, r) => {
    t.equal(past.cached[r], lengths[row.seqId] ?? 0, `${row.seqId} feeds ${lengths[row.seqId] ?? 0} cached positions`)
    names.forEach((name, index) => {
      const tensor = past.tensors[`past_key_values.${name}`] as ort.Tensor
      const data = tensor.data as Float32Array
      for (let h = 0; h < HEADS; h++) {
        for (let p = 0; p < (past.cached[r] as number); p++) {
          for (let d = 0; d < DIM; d++)
            if (data[((r * HEADS + h) * past.pastLength + p) * DIM + d] !== value(row.seqId, p, index, h, d)) wrong++
        }
      }
    })
  })
  t.equal(wrong, 0, `every cached value of ${past.rows.map((r) => r.seqId).join(',')} is in place`)
  t.ok(
    past.rows.every((_, r) => (past.cached[r] as number) <= past.pastLength),
    'caches fit the slots',
  )
  return past.rows.map((r) => r.seqId)
}

function call(
  store: HostKvStore,
  rows: BatchRow[],
  lengths: Record<string, number>,
  t: Test,
  kind: 'delta' | 'present' = 'delta',
): PastFeeds {
  const past = store.gather(rows)
  check(t, past, lengths)
  const seq = Math.max(...rows.map((r) => r.newSlots))
  store.append(past, outputs(past, seq, kind), { seq, fromPresent: kind === 'present' })
  for (const row of rows) lengths[row.seqId] = (lengths[row.seqId] ?? 0) + row.newSlots
  return past
}

t.test(
  'sequences keep their cache exactly while they move between prefill calls, the decode batch and back',
  async (t) => {
    const store = new HostKvStore(config)
    const lengths: Record<string, number> = {}
    const decode = (...ids: string[]) =>
      call(
        store,
        ids.map((seqId) => ({ seqId, newSlots: 1 })),
        lengths,
        t,
      )

    call(
      store,
      [
        { seqId: 'A', newSlots: 5 },
        { seqId: 'B', newSlots: 3 },
      ],
      lengths,
      t,
    )
    for (let i = 0; i < 3; i++) decode('A', 'B')
    t.equal(decode('A', 'B').pastLength, SLOT_BUCKET, 'decode rows get one bucket of slots')

    call(store, [{ seqId: 'C', newSlots: SLOT_BUCKET + 6 }], lengths, t)
    const joined = decode('A', 'B', 'C')
    t.equal(joined.pastLength, 2 * SLOT_BUCKET, 'a longer row grows the slots by a bucket')
    t.same(
      joined.rows.map((r) => r.seqId),
      ['A', 'B', 'C'],
      'a joining row is appended',
    )

    store.free('A')
    t.same(
      decode('B', 'C').rows.map((r) => r.seqId),
      ['C', 'B'],
      'the last row fills a freed row',
    )
    t.same(
      decode('C').rows.map((r) => r.seqId),
      ['C'],
      'a row not in the call leaves the batch',
    )
    t.equal(store.length('B'), lengths.B, 'and keeps its cache')
    call(
      store,
      [
        { seqId: 'B', newSlots: 2 },
        { seqId: 'C', newSlots: 3 },
      ],
      lengths,
      t,
    )
    decode('B', 'C')
    call(
      store,
      [
        { seqId: 'B', newSlots: 1 },
        { seqId: 'C', newSlots: 1 },
      ],
      lengths,
      t,
      'present',
    )
    decode('C', 'B')

    t.equal(store.sequences, 2)
    t.equal(store.positions, (lengths.B as number) + (lengths.C as number))
    store.free('B')
    store.free('C')
    store.free('C')
    t.equal(store.sequences, 0, 'nothing left after freeing')
    t.equal(store.positions, 0)
  },
)

t.test('the slots shrink again when the long rows leave', async (t) => {
  const store = new HostKvStore(config)
  const lengths: Record<string, number> = {}
  call(
    store,
    [
      { seqId: 'L', newSlots: 3 * SLOT_BUCKET },
      { seqId: 'S', newSlots: 4 },
    ],
    lengths,
    t,
  )
  t.equal(
    call(
      store,
      [
        { seqId: 'L', newSlots: 1 },
        { seqId: 'S', newSlots: 1 },
      ],
      lengths,
      t,
    ).pastLength,
    4 * SLOT_BUCKET,
  )
  store.free('L')
  t.equal(call(store, [{ seqId: 'S', newSlots: 1 }], lengths, t).pastLength, SLOT_BUCKET)
})
