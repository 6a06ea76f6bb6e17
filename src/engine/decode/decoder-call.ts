/**
 * One decoder.onnx call over a batch of rows, each adding `newSlots` blocks to
 * its sequence's cache. The store lays each row's cache out from slot 0 (see
 * HostKvStore) and new slots are padded at the end, so a row's attention mask reads:
 *
 *   [1 1 1 1 0 0 | 1 1 1 0]   cached slots · padding | new slots (last one padding)
 */
import ort from 'onnxruntime-node'
import { kvName } from '../graph-signatures.js'
import type { KelixModel } from '../model.js'
import type { BatchRow, KvStore } from '../kv/kv-store.js'

export interface DecoderRow extends BatchRow {
  /** The new blocks, `newSlots × block_size` ids. */
  blocks: Int32Array
}

export interface DecoderResult {
  /** The rows in the order the results use (the KV store may reorder the call's rows). */
  rows: readonly DecoderRow[]
  /** Per row, the hidden state at its last new slot: [rows × hidden]. */
  lastHidden: Float32Array
  /** Every new slot's hidden state: [rows × seq × hidden], padding slots included. */
  states: Float32Array
  /** New slots per row in `states`. */
  seq: number
  /** Bytes of cache fed to or returned by the call in host memory (see StepTimings.kvHostBytes). */
  kvHostBytes: number
}

export async function runDecoder(
  model: KelixModel,
  kv: KvStore,
  callRows: readonly DecoderRow[],
): Promise<DecoderResult> {
  const { block_size: blockSize, special_tokens: special } = model.config
  const hidden = model.config.llm.hidden_size
  const seq = Math.max(...callRows.map((r) => r.newSlots))
  const past = await kv.gather(callRows)
  const byId = new Map(callRows.map((r) => [r.seqId, r]))
  const rows = past.rows.map((r) => byId.get(r.seqId) as DecoderRow)
  const total = past.pastLength + seq
  const blockIds = new BigInt64Array(rows.length * seq * blockSize).fill(BigInt(special.eob))
  const mask = new BigInt64Array(rows.length * total)
  const positions = new BigInt64Array(rows.length * seq)
  rows.forEach((row, r) => {
    const cached = past.cached[r] as number
    for (let i = 0; i < row.newSlots * blockSize; i++)
      blockIds[r * seq * blockSize + i] = BigInt(row.blocks[i] as number)
    mask.fill(1n, r * total, r * total + cached)
    mask.fill(1n, r * total + past.pastLength, r * total + past.pastLength + row.newSlots)
    for (let j = 0; j < seq; j++) positions[r * seq + j] = BigInt(cached + Math.min(j, row.newSlots - 1))
  })
  const fromPresent = !model.decoderHasDelta
  const fetches = ['hidden_states']
  for (let i = 0; i < model.config.llm.num_layers; i++) {
    for (const part of ['key', 'value'] as const) fetches.push(kvName(fromPresent ? 'present' : 'delta', i, part))
  }
  const outputs = await model.decoder.run(
    {
      ...past.tensors,
      block_ids: new ort.Tensor('int64', blockIds, [rows.length, seq, blockSize]),
      attention_mask: new ort.Tensor('int64', mask, [rows.length, total]),
      position_ids: new ort.Tensor('int64', positions, [rows.length, seq]),
    },
    fetches,
  )
  const kvHostBytes = hostBytes(Object.values(past.tensors)) + hostBytes(fetches.slice(1).map((name) => outputs[name]))
  await kv.append(past, outputs, { seq, fromPresent })
  const states = (outputs.hidden_states as ort.Tensor).data as Float32Array
  const lastHidden = new Float32Array(rows.length * hidden)
  rows.forEach((row, r) => {
    const from = (r * seq + row.newSlots - 1) * hidden
    lastHidden.set(states.subarray(from, from + hidden), r * hidden)
  })
  return { rows, lastHidden, states, seq, kvHostBytes }
}

/** Bytes of the tensors that are in host memory. */
function hostBytes(values: ReadonlyArray<ort.OnnxValue | undefined>): number {
  let bytes = 0
  for (const value of values)
    if (value instanceof ort.Tensor && value.location === 'cpu') bytes += (value.data as ArrayBufferView).byteLength
  return bytes
}
