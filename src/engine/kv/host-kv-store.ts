/**
 * KV store in host memory. Each sequence owns, per layer, one key and one
 * value array laid out [kv_heads, capacity, head_dim], grown by doubling:
 *
 *   sequence A, layer i key:  head0 [■■■■■■□□] head1 [■■■■■■□□]   (■ filled, □ spare capacity)
 *
 * A decoder call gets one batch tensor per layer and kind, rebuilt from these
 * arrays into reused scratch buffers (one memcpy per row and head), with each
 * sequence right-aligned so padding sits at the front and is masked:
 *
 *   row 0 (A, 6 slots): ■■■■■■
 *   row 1 (B, 4 slots): ··■■■■
 *
 * Only the new entries come back from the graph (`present_delta.*`), so a step
 * never copies the whole cache out of ONNX Runtime.
 */
import ort from 'onnxruntime-node'
import { kvName } from '../graph-signatures.js'
import type { KelixConfig } from '../model-config.js'
import type { BatchRow, KvStore, PastFeeds } from './kv-store.js'

type Elements = Float32Array | Uint16Array

interface SequenceCache {
  length: number
  capacity: number
  /** [layer][0 = key, 1 = value] */
  arrays: Array<[Elements, Elements]>
}

const MIN_CAPACITY = 32

export class HostKvStore implements KvStore {
  private readonly cache = new Map<string, SequenceCache>()
  private readonly scratch = new Map<string, Elements>()
  private readonly layers: number
  private readonly heads: number
  private readonly dim: number
  private readonly dtype: 'float32' | 'float16'

  constructor(config: KelixConfig) {
    this.layers = config.llm.num_layers
    this.heads = config.llm.num_key_value_heads
    this.dim = config.llm.head_dim
    this.dtype = config.llm.kv_dtype
  }

  get sequences(): number {
    return this.cache.size
  }

  get positions(): number {
    let total = 0
    for (const c of this.cache.values()) total += c.length
    return total
  }

  length(seqId: string): number {
    return this.cache.get(seqId)?.length ?? 0
  }

  free(seqId: string): void {
    this.cache.delete(seqId)
  }

  gather(rows: readonly BatchRow[]): PastFeeds {
    const lengths = rows.map((r) => this.length(r.seqId))
    const pastLength = Math.max(0, ...lengths)
    const padding = lengths.map((l) => pastLength - l)
    const rowSize = this.heads * pastLength * this.dim
    const tensors: Record<string, ort.Tensor> = {}
    for (let layer = 0; layer < this.layers; layer++) {
      for (const [part, kind] of [[0, 'key'], [1, 'value']] as const) {
        const name = kvName('past', layer, kind)
        const batch = this.scratchFor(name, rows.length * rowSize)
        rows.forEach((row, r) => {
          const seq = this.cache.get(row.seqId)
          if (seq === undefined || seq.length === 0) return
          const source = (seq.arrays[layer] as [Elements, Elements])[part]
          for (let h = 0; h < this.heads; h++) {
            const from = h * seq.capacity * this.dim
            batch.set(source.subarray(from, from + seq.length * this.dim), ((r * this.heads + h) * pastLength + (padding[r] as number)) * this.dim)
          }
        })
        tensors[name] = new ort.Tensor(this.dtype, batch, [rows.length, this.heads, pastLength, this.dim])
      }
    }
    return { tensors, pastLength, padding }
  }

  append(rows: readonly BatchRow[], outputs: ort.InferenceSession.OnnxValueMapType, layout: { seq: number; pastLength: number; fromPresent: boolean }): void {
    const time = layout.fromPresent ? layout.pastLength + layout.seq : layout.seq
    const base = layout.fromPresent ? layout.pastLength : 0
    rows.forEach((row, r) => {
      if (row.newSlots === 0) return
      const seq = this.reserve(row.seqId, row.newSlots)
      for (let layer = 0; layer < this.layers; layer++) {
        for (const [part, kind] of [[0, 'key'], [1, 'value']] as const) {
          const output = outputs[kvName(layout.fromPresent ? 'present' : 'delta', layer, kind)] as ort.Tensor
          const data = output.data as Elements
          const target = (seq.arrays[layer] as [Elements, Elements])[part]
          for (let h = 0; h < this.heads; h++) {
            const from = ((r * this.heads + h) * time + base) * this.dim
            target.set(data.subarray(from, from + row.newSlots * this.dim), (h * seq.capacity + seq.length) * this.dim)
          }
        }
      }
      seq.length += row.newSlots
    })
  }

  /** The sequence's cache with room for `extra` more positions. */
  private reserve(seqId: string, extra: number): SequenceCache {
    let seq = this.cache.get(seqId)
    if (seq === undefined) {
      seq = { length: 0, capacity: 0, arrays: [] }
      this.cache.set(seqId, seq)
    }
    if (seq.length + extra > seq.capacity) this.grow(seq, Math.max(MIN_CAPACITY, seq.capacity * 2, seq.length + extra))
    return seq
  }

  private grow(seq: SequenceCache, capacity: number): void {
    const size = this.heads * capacity * this.dim
    const arrays: Array<[Elements, Elements]> = []
    for (let layer = 0; layer < this.layers; layer++) {
      const pair: [Elements, Elements] = [this.allocate(size), this.allocate(size)]
      const old = seq.arrays[layer]
      if (old !== undefined) {
        for (const part of [0, 1] as const) {
          for (let h = 0; h < this.heads; h++) {
            const from = h * seq.capacity * this.dim
            pair[part].set(old[part].subarray(from, from + seq.length * this.dim), h * capacity * this.dim)
          }
        }
      }
      arrays.push(pair)
    }
    seq.arrays = arrays
    seq.capacity = capacity
  }

  private allocate(size: number): Elements {
    return this.dtype === 'float16' ? new Uint16Array(size) : new Float32Array(size)
  }

  /** A reused buffer viewed at exactly `size` elements; grows when a call needs more. */
  private scratchFor(name: string, size: number): Elements {
    let buffer = this.scratch.get(name)
    if (buffer === undefined || buffer.length < size) {
      buffer = this.allocate(Math.max(size, (buffer?.length ?? 0) * 2))
      this.scratch.set(name, buffer)
    }
    return buffer.subarray(0, size)
  }
}
