/** HostKvStore: caches exact through prefill calls, the decode batch and back (simulated calls). */
import t from 'tap'
import { SLOT_BUCKET } from '../../src/engine/kv/decode-batch.js'
import { HostKvStore } from '../../src/engine/kv/host-kv-store.js'
import { config, randomCalls, simulateCall } from '../helpers/kv-simulation.js'

t.test(
  'sequences keep their cache exactly while they move between prefill calls, the decode batch and back',
  async (t) => {
    const store = new HostKvStore(config)
    const lengths: Record<string, number> = {}
    const decode = (...ids: string[]) =>
      simulateCall(
        store,
        ids.map((seqId) => ({ seqId, newSlots: 1 })),
        lengths,
        t,
      )

    await simulateCall(
      store,
      [
        { seqId: 'A', newSlots: 5 },
        { seqId: 'B', newSlots: 3 },
      ],
      lengths,
      t,
    )
    for (let i = 0; i < 3; i++) await decode('A', 'B')
    t.equal((await decode('A', 'B')).pastLength, SLOT_BUCKET, 'decode rows get one bucket of slots')

    await simulateCall(store, [{ seqId: 'C', newSlots: SLOT_BUCKET + 6 }], lengths, t)
    const joined = await decode('A', 'B', 'C')
    t.equal(joined.pastLength, 2 * SLOT_BUCKET, 'a longer row grows the slots by a bucket')
    t.same(
      joined.rows.map((r) => r.seqId),
      ['A', 'B', 'C'],
      'a joining row is appended',
    )

    store.free('A')
    t.same(
      (await decode('B', 'C')).rows.map((r) => r.seqId),
      ['C', 'B'],
      'the last row fills a freed row',
    )
    t.same(
      (await decode('C')).rows.map((r) => r.seqId),
      ['C'],
      'a row not in the call leaves the batch',
    )
    t.equal(store.length('B'), lengths.B, 'and keeps its cache')
    await simulateCall(
      store,
      [
        { seqId: 'B', newSlots: 2 },
        { seqId: 'C', newSlots: 3 },
      ],
      lengths,
      t,
    )
    await decode('B', 'C')
    await simulateCall(
      store,
      [
        { seqId: 'B', newSlots: 1 },
        { seqId: 'C', newSlots: 1 },
      ],
      lengths,
      t,
      'present',
    )
    await decode('C', 'B')

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
  await simulateCall(
    store,
    [
      { seqId: 'L', newSlots: 3 * SLOT_BUCKET },
      { seqId: 'S', newSlots: 4 },
    ],
    lengths,
    t,
  )
  t.equal(
    (
      await simulateCall(
        store,
        [
          { seqId: 'L', newSlots: 1 },
          { seqId: 'S', newSlots: 1 },
        ],
        lengths,
        t,
      )
    ).pastLength,
    4 * SLOT_BUCKET,
  )
  store.free('L')
  t.equal((await simulateCall(store, [{ seqId: 'S', newSlots: 1 }], lengths, t)).pastLength, SLOT_BUCKET)
})

t.test('a seeded random run of prefill chunks, decode steps and frees keeps every cache exact', async (t) => {
  for (const seed of [1, 2, 3]) await randomCalls(t, new HostKvStore(config), { seed, calls: 60 })
})
