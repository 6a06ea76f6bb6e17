/**
 * DeviceKvStore on WebGPU, through the same simulated calls as HostKvStore:
 * every cached value stays exact while sequences move between prefill calls,
 * the decode batch and back, with the cache kept on the device throughout
 * (its tensors are read back only to check them).
 */
import t, { type Test } from 'tap'
import { SLOT_BUCKET } from '../../src/engine/kv/decode-batch.js'
import { DeviceKvOps } from '../../src/engine/kv/device-kv-ops.js'
import { DeviceKvStore } from '../../src/engine/kv/device-kv-store.js'
import { config, DIM, HEADS, LAYERS, randomCalls, simulateCall, type ReadPast } from '../helpers/kv-simulation.js'
import { webgpuSkip } from '../helpers/webgpu.js'

const skip = await webgpuSkip()

async function deviceStore(t: Test) {
  const ops = await DeviceKvOps.create({ tensors: LAYERS * 2, heads: HEADS, dim: DIM, dtype: 'float32' }, 'webgpu')
  t.teardown(() => ops.release())
  /** Where the last call's past was when it was fed. */
  const fed = { locations: [] as string[] }
  const read: ReadPast = async (tensors) => {
    fed.locations = tensors.map((tensor) => tensor.location)
    return (await ops.read(tensors)).map((tensor) => tensor.data as Float32Array)
  }
  const store = new DeviceKvStore(config, ops)
  const lengths: Record<string, number> = {}
  /** One simulated call of rows `[seqId, newSlots]`. */
  const call = (rows: Array<[string, number]>) =>
    simulateCall(
      store,
      rows.map(([seqId, newSlots]) => ({ seqId, newSlots })),
      lengths,
      t,
      'delta',
      read,
    )
  return { store, fed, lengths, call, read, ops }
}

t.test('caches stay exact through prefill calls, the decode batch and back, on the device', { skip }, async (t) => {
  const { store, fed, lengths, call } = await deviceStore(t)
  const decode = (...ids: string[]) => call(ids.map((seqId) => [seqId, 1]))

  const first = await call([
    ['A', 5],
    ['B', 3],
  ])
  t.equal(first.pastLength, 1, 'an empty past is one masked slot (an empty one crashes the WebGPU provider)')
  await call([
    ['A', 2],
    ['B', 4],
  ])
  for (let i = 0; i < 3; i++) await decode('A', 'B')
  const steady = await decode('A', 'B')
  t.equal(steady.pastLength, SLOT_BUCKET, 'decode rows get one bucket of slots')
  t.same(new Set(fed.locations), new Set(['gpu-buffer']), 'the decode batch is fed from the device')

  await call([['C', SLOT_BUCKET + 6]])
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
    ['B', 'C'],
    'a freed row is dropped, the others keep their order',
  )
  t.same(
    (await decode('C')).rows.map((r) => r.seqId),
    ['C'],
    'a row not in the call leaves the batch',
  )
  t.equal(store.length('B'), lengths.B, 'and keeps its cache')
  await call([
    ['B', 2],
    ['C', 3],
  ])
  await decode('B', 'C')
  await decode('C', 'B')
  await decode('D', 'B')
  t.equal(store.length('D'), 1, 'a one-block prompt decodes from an empty cache')

  t.equal(store.sequences, 3)
  t.equal(store.positions, (lengths.B as number) + (lengths.C as number) + (lengths.D as number))
  for (const seqId of ['B', 'C', 'D', 'C']) store.free(seqId)
  t.equal(store.sequences, 0, 'nothing left after freeing')
  t.equal(store.positions, 0)
})

t.test('the slots shrink again when the long rows leave', { skip }, async (t) => {
  const { store, call } = await deviceStore(t)
  await call([
    ['L', 3 * SLOT_BUCKET],
    ['S', 4],
  ])
  t.equal(
    (
      await call([
        ['L', 1],
        ['S', 1],
      ])
    ).pastLength,
    4 * SLOT_BUCKET,
  )
  store.free('L')
  t.equal((await call([['S', 1]])).pastLength, SLOT_BUCKET)
  t.equal(store.length('S'), 6)
})

t.test('a seeded random run of prefill chunks, decode steps and frees keeps every cache exact', { skip }, async (t) => {
  const { ops, read } = await deviceStore(t)
  for (const seed of [1, 2, 3]) await randomCalls(t, new DeviceKvStore(config, ops), { seed, calls: 60, read })
})
