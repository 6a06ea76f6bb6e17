/**
 * KV stores without a model: calls are simulated by writing, for each new
 * position, a value that encodes (sequence, position, layer/part, head, dim);
 * every gather must then feed exactly those values in slots [0, cached) of
 * each row, whichever home (own tensors or the decode batch) a sequence is in.
 */
import ort from 'onnxruntime-node'
import type { Test } from 'tap'
import type { KelixConfig } from '../../src/engine/model-config.js'
import type { BatchRow, KvStore, PastFeeds } from '../../src/engine/kv/kv-store.js'

export const LAYERS = 2
export const HEADS = 2
export const DIM = 4
export const config = {
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

/** The past tensors' data in `names` order, read from wherever they are. */
export type ReadPast = (tensors: ort.Tensor[]) => Promise<Float32Array[]>

const readHost: ReadPast = async (tensors) => tensors.map((tensor) => tensor.data as Float32Array)

/** Checks the fed past against the encoded values and the expected lengths; returns the rows' order. */
async function check(t: Test, past: PastFeeds, lengths: Record<string, number>, read: ReadPast): Promise<string[]> {
  let wrong = 0
  const datas = await read(names.map((name) => past.tensors[`past_key_values.${name}`] as ort.Tensor))
  past.rows.forEach((row, r) => {
    t.equal(past.cached[r], lengths[row.seqId] ?? 0, `${row.seqId} feeds ${lengths[row.seqId] ?? 0} cached positions`)
    names.forEach((_, index) => {
      const data = datas[index] as Float32Array
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

/** One simulated decoder call: gathers, checks what is fed, appends the call's new positions. */
export async function simulateCall(
  store: KvStore,
  rows: BatchRow[],
  lengths: Record<string, number>,
  t: Test,
  kind: 'delta' | 'present' = 'delta',
  read: ReadPast = readHost,
): Promise<PastFeeds> {
  const past = await store.gather(rows)
  await check(t, past, lengths, read)
  const seq = Math.max(...rows.map((r) => r.newSlots))
  await store.append(past, outputs(past, seq, kind), { seq, fromPresent: kind === 'present' })
  for (const row of rows) lengths[row.seqId] = (lengths[row.seqId] ?? 0) + row.newSlots
  return past
}

/**
 * A seeded random run of calls against `store`: prefill chunks of 1 to 40
 * slots and decode steps over random subsets of up to six sequences, with
 * sequences freed and new ones started between calls. Every gather is
 * checked by simulateCall; the run ends with every sequence freed.
 */
export async function randomCalls(
  t: Test,
  store: KvStore,
  opts: { seed: number; calls: number; read?: ReadPast },
): Promise<void> {
  let state = opts.seed >>> 0
  const next = (n: number) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state % n
  }
  const lengths: Record<string, number> = {}
  const live = new Set<string>()
  let started = 0
  for (let call = 0; call < opts.calls; call++) {
    while (live.size < 2 || (live.size < 6 && next(4) === 0)) live.add(String.fromCharCode(65 + started++))
    const ids = [...live].filter(() => next(3) > 0)
    if (ids.length === 0) continue
    const decode = next(3) > 0 && ids.every((id) => (lengths[id] ?? 0) > 0)
    const rows = ids.map((seqId) => ({ seqId, newSlots: decode ? 1 : 1 + next(40) }))
    await simulateCall(store, rows, lengths, t, 'delta', opts.read)
    for (const id of [...live]) {
      if (next(8) > 0) continue
      store.free(id)
      live.delete(id)
      delete lengths[id]
    }
  }
  for (const id of live) store.free(id)
  t.equal(store.sequences, 0, 'nothing left after freeing')
  t.equal(store.positions, 0)
}
