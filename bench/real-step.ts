/**
 * One decode step of decoder.onnx at Kelix-8B's shapes (hidden 4096, 32 query
 * / 8 KV heads of 128, SwiGLU 12288, 217,472-row embedding table) with random
 * weights written straight by the graph builder (no checkpoint, no
 * converter), on any execution provider, timed against its floor: the bytes
 * of weights the step reads ÷ the device's bandwidth measured in the same run.
 *
 * On WebGPU the past is uploaded once and fed from the device, and each step
 * writes its new entries into it there (timed with the step), as the device
 * KV store runs it; on other providers the
 * past is in host memory, as onnxruntime-node gives no other choice (every
 * step then copies it to the device and back: counted as KV host bytes).
 */
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import type { Architecture } from '../src/builder/architecture.js'
import { buildDecoder, embeddingTable } from '../src/builder/decoder.js'
import { GraphBuilder } from '../src/builder/graph.js'
import { resolvePrecision, type QuantizedPrecision } from '../src/builder/precision.js'
import { elementCount, type TensorData } from '../src/builder/tensor-data.js'
import { TINY_CONFIG } from '../src/builder/tiny.js'
import { SeededWeights, type CheckpointWeights } from '../src/builder/weights.js'
import { kvName, MODEL_FILES } from '../src/engine/graph-signatures.js'
import { DeviceKvOps } from '../src/engine/kv/device-kv-ops.js'
import type { KelixConfig } from '../src/engine/model-config.js'
import { modelSessionOptions } from '../src/engine/model.js'
import type { ExecutionProvider } from '../src/engine/providers.js'
import { median } from './stats.js'

/** A first step slower than this is timed once. */
export const SLOW_STEP_MS = 2000

export interface RealDecoder {
  precision: QuantizedPrecision
  layers: number
  path: string
  config: KelixConfig
  /** decoder.onnx's weights (its data file): what one step reads, but for a few embedding rows and the cache. */
  weightBytes: number
}

export interface RealStepRow {
  provider: ExecutionProvider
  precision: QuantizedPrecision
  layers: number
  batch: number
  pastLength: number
  stepMs: number
  floorMs: number
  /** stepMs ÷ floorMs. */
  ratio: number
  /** Cache bytes passed in host memory per step (0 when the cache stays on the device). */
  kvHostBytesPerStep: number
}

/** Kelix-8B's LLM with `layers` layers (36 in the model): the rest of the config is the tiny model's. */
export function realConfig(layers: number): KelixConfig {
  return {
    ...TINY_CONFIG,
    vocab: {
      text_vocab_size: 151936,
      num_codebooks: 8,
      codebook_size: 8192,
      visual_id_offset: 151936,
      vocab_size: 151936 + 8 * 8192,
    },
    llm: {
      ...TINY_CONFIG.llm,
      num_layers: layers,
      hidden_size: 4096,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      head_dim: 128,
      max_position_embeddings: 40960,
      rope_theta: 1e6,
    },
  }
}

/**
 * Random weights made fast: every tensor is one seeded block of values,
 * rotated by an offset of its own for each piece, produced piece by piece
 * while the file is written (no tensor is held whole). The rotation matters:
 * tensors of identical content run several times faster than distinct ones
 * (measured: a Qwen3-0.6B-shaped int4 step took 9 ms with repeated weights,
 * 18 ms with distinct ones), as if ONNX Runtime kept identical weights once,
 * so a step over repeated weights is not memory-bound.
 */
function randomWeights(): CheckpointWeights {
  const block = new SeededWeights(1).random('real-step', (1 << 22) + 1, 0.02)
  let serial = 0
  // Pieces of whole rows: the quantizer takes a piece only when it holds whole rows.
  const tensor = (dims: readonly number[]): TensorData => {
    const id = ++serial
    return {
      dims,
      async write(put) {
        const n = elementCount(dims)
        const row = dims[dims.length - 1] ?? 1
        const piece = Math.floor(block.length / row) * row
        const values = new Float32Array(Math.min(piece, n))
        for (let at = 0; at < n; at += piece) {
          const length = Math.min(piece, n - at)
          const start = (id * 104729 + at * 7) % block.length
          const first = Math.min(length, block.length - start)
          values.set(block.subarray(start, start + first))
          values.set(block.subarray(0, length - first), first)
          await put(at, values.subarray(0, length))
        }
      },
    }
  }
  const filled = (dim: number, value: number): TensorData => ({
    dims: [dim],
    write: (put) => put(0, new Float32Array(dim).fill(value)),
  })
  return {
    linear: (_key, inDim, outDim) => tensor([inDim, outDim]),
    storedLinear: (_key, inDim, outDim) => tensor([outDim, inDim]),
    bias: (_key, dim) => filled(dim, 0),
    scale: (_key, dim) => filled(dim, 1),
    tensor: (_key, shape) => tensor(shape),
    rows: (_key, shape, lo, hi) => tensor([hi - lo, ...shape.slice(1)]),
    transposed: (_key, shape, rows) =>
      tensor([elementCount(shape.slice(1)), rows === undefined ? (shape[0] ?? 0) : rows[1] - rows[0]]),
  }
}

/** Writes decoder.onnx (and the embedding table) at `precision` into `dir`. */
export async function buildRealDecoder(
  dir: string,
  precision: QuantizedPrecision,
  layers: number,
): Promise<RealDecoder> {
  const config = realConfig(layers)
  const arch = { config, llmIntermediateSize: 12288 } as Architecture
  const w = randomWeights()
  const table = embeddingTable(w, config, 'fp16')
  await table.save(join(dir, table.file))
  const path = join(dir, MODEL_FILES.decoder)
  const g = new GraphBuilder('decoder')
  await buildDecoder(
    { g, w },
    arch,
    table,
    'delta',
    resolvePrecision({ linear: precision, embedding: 'fp16' }),
    'fused',
  ).save(path)
  return { precision, layers, path, config, weightBytes: (await stat(`${path}.data`)).size }
}

/** Median decode-step time at `batch` rows of `pastLength` cached positions on `provider`. */
export async function timeRealStep(
  decoder: RealDecoder,
  provider: ExecutionProvider,
  opts: { batch: number; pastLength: number; bandwidthGBps: number; steps: number },
): Promise<RealStepRow> {
  const { llm, block_size: blockSize } = decoder.config
  const onDevice = provider === 'webgpu'
  const deltas = Array.from({ length: llm.num_layers * 2 }, (_, i) => kvName('delta', i >> 1, i % 2 ? 'value' : 'key'))
  const session = await ort.InferenceSession.create(decoder.path, {
    ...modelSessionOptions({ executionProviders: [provider] }),
    ...(onDevice ? { preferredOutputLocation: Object.fromEntries(deltas.map((n) => [n, 'gpu-buffer' as const])) } : {}),
  })
  const shape = { tensors: deltas.length, heads: llm.num_key_value_heads, dim: llm.head_dim, dtype: llm.kv_dtype }
  const ops = onDevice ? await DeviceKvOps.create(shape, provider) : undefined
  try {
    const { batch, pastLength } = opts
    const zeros = () =>
      Array.from(
        { length: deltas.length },
        () =>
          new ort.Tensor('float32', new Float32Array(batch * shape.heads * pastLength * shape.dim), [
            batch,
            shape.heads,
            pastLength,
            shape.dim,
          ]),
      )
    // Padding by nothing copies the host zeros to the device once.
    const past = ops === undefined ? zeros() : await ops.pad(zeros(), 0)
    const feeds: Record<string, ort.Tensor> = {
      block_ids: new ort.Tensor('int64', new BigInt64Array(batch * blockSize).fill(5n), [batch, 1, blockSize]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(batch * (pastLength + 1)).fill(1n), [
        batch,
        pastLength + 1,
      ]),
      position_ids: new ort.Tensor('int64', new BigInt64Array(batch).fill(BigInt(pastLength)), [batch, 1]),
    }
    past.forEach((t, i) => (feeds[kvName('past', i >> 1, i % 2 ? 'value' : 'key')] = t))
    const kvHostBytes = onDevice
      ? 0
      : past.reduce((n, t) => n + (t.data as Float32Array).byteLength, 0) * (1 + 1 / pastLength)
    // On the device, each step also writes its new entries into the past, as the device KV store does.
    let current = past
    const step = async () => {
      const start = performance.now()
      const out = await session.run(feeds)
      const fresh = deltas.map((name) => out[name] as ort.Tensor)
      if (ops !== undefined) {
        const written = await ops.write(current, fresh, Array<number>(batch).fill(pastLength - 1))
        for (const t of current) t.dispose()
        current = written
        written.forEach((t, i) => (feeds[kvName('past', i >> 1, i % 2 ? 'value' : 'key')] = t))
      }
      const ms = performance.now() - start
      for (const t of fresh) if (t.location === 'gpu-buffer') t.dispose()
      return ms
    }
    // A provider that takes seconds a step (a software adapter such as lavapipe) is timed once, not `steps` times.
    const slow = (await step()) > SLOW_STEP_MS
    if (!slow) await step()
    const times: number[] = []
    for (let i = 0; i < (slow ? 1 : opts.steps); i++) times.push(await step())
    for (const t of current) if (t.location === 'gpu-buffer') t.dispose()
    const stepMs = median(times)
    const floorMs = (decoder.weightBytes / (opts.bandwidthGBps * 1e9)) * 1000
    return {
      provider,
      precision: decoder.precision,
      layers: decoder.layers,
      batch,
      pastLength,
      stepMs,
      floorMs,
      ratio: stepMs / floorMs,
      kvHostBytesPerStep: kvHostBytes,
    }
  } finally {
    await session.release()
    await ops?.release()
  }
}
