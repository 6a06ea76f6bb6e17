/**
 * The presets' synthetic models: sizes, the bf16 checkpoint (random values,
 * Qwen3's real tokenizer with Kelix's added tokens: convert-bench.ts
 * `writeSynthetic`) and its exports at each precision, with estimates of
 * their sizes so a run can refuse before it fills a disk.
 *
 * GB are 10^9 bytes.
 */
import { existsSync } from 'node:fs'
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { kelixTensorSpecs, type KelixCheckpointSizes, type TensorSpec } from '../src/builder/kelix-checkpoint-layout.js'
import type { Precision, WeightPrecision } from '../src/builder/precision.js'
import { quantLayout } from '../src/builder/quantize.js'
import { convertCheckpoint } from '../src/convert/convert.js'
import { ggmlBytes, type GgmlType } from './gguf/ggml-blocks.js'
import { kelix8bSizes, writeSynthetic } from './convert-bench.js'

export const GB = 1e9

export type PresetName = 'small' | 'full'

export interface PresetPrecision {
  name: string
  precision: Precision
  /** The GGUF type llama.cpp runs beside it (the small preset's side-by-side): the same bits per linear weight. */
  gguf: GgmlType
}

/**
 * Qwen3-0.6B's LLM (28 layers, hidden 1024, 16 query / 8 KV heads of 128,
 * FFN 3072, RoPE θ 1e6, RMSNorm eps 1e-6) inside Kelix: Kelix's unified
 * vocabulary, block decoder and vision tower. The block decoder's input and
 * output projections, the vision merger's output and the quantizer's encoder
 * follow the LLM's hidden size (kelixTensorSpecs).
 */
export function qwen3SmallSizes(layers = 28): KelixCheckpointSizes {
  return {
    ...kelix8bSizes(layers),
    hidden: 1024,
    layers,
    heads: 16,
    kvHeads: 8,
    headDim: 128,
    intermediate: 3072,
    maxSeqLen: 40960,
    ropeBase: 1e6,
    normEps: 1e-6,
  }
}

export function presetSizes(preset: PresetName, layers?: number): KelixCheckpointSizes {
  return preset === 'small' ? qwen3SmallSizes(layers ?? 28) : kelix8bSizes(layers ?? 36)
}

/**
 * Small: the three precisions the converter offers for the linears, the LM
 * head int8 once they are quantized (the converter's default). The embedding
 * table stays fp32 in all three: a step reads 9 of its rows, so its precision
 * changes the file, not the step, and keeping it fixed isolates the linears.
 * Full: the one export that fits this machine's memory, int4 with the
 * embedding table in fp16 (1.8 GB instead of 3.6).
 */
export function presetPrecisions(preset: PresetName): PresetPrecision[] {
  if (preset === 'full')
    return [{ name: 'int4', precision: { linear: 'int4', lmHead: 'int8', embedding: 'fp16' }, gguf: 'Q4_0' }]
  return [
    { name: 'fp32', precision: { linear: 'fp32', lmHead: 'fp32', embedding: 'fp32' }, gguf: 'F32' },
    { name: 'int8', precision: { linear: 'int8', lmHead: 'int8', embedding: 'fp32' }, gguf: 'Q8_0' },
    { name: 'int4', precision: { linear: 'int4', lmHead: 'int8', embedding: 'fp32' }, gguf: 'Q4_0' },
  ]
}

/**
 * Keys the converter never reads are left out of the written checkpoint: the
 * top-level `lm_head` (the served head is `model.model.output`) and the vision
 * tower's packing position table. They would only cost disk and write time
 * (1.9 GB at the 8B shapes).
 */
const NEVER_READ = (key: string) => key === 'lm_head.weight' || key.includes('packing_position_embedding')

export function checkpointSpecs(sizes: KelixCheckpointSizes): TensorSpec[] {
  return kelixTensorSpecs(sizes).filter((s) => !NEVER_READ(s.key))
}

const elements = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1)

export function checkpointBytes(sizes: KelixCheckpointSizes): number {
  return 2 * checkpointSpecs(sizes).reduce((n, s) => n + elements(s.shape), 0)
}

/** A [N, K] weight as stored: float32, or MatMulNBits codes and a float32 scale per 32 values. */
function matrixBytes([n, k]: readonly number[], p: WeightPrecision): number {
  if (p === 'fp32') return 4 * (n as number) * (k as number)
  const { blocks, rowBytes } = quantLayout(k as number, p === 'int8' ? 8 : 4)
  return (n as number) * (rowBytes + 4 * blocks)
}

/**
 * The export's bytes, from the specs: the LLM's linears and the LM head at
 * their precision, the embedding table once (shared by two graphs), the
 * slot table cut to its 9 used rows, the codebooks precomputed from the
 * quantizer tables (which are not exported), everything else float32.
 */
export function exportBytesEstimate(sizes: KelixCheckpointSizes, p: Precision): number {
  const layerLinear = /^model\.model\.layers\.\d+\.(attn|mlp)\.[^.]+\.weight$/
  let bytes = 4 * sizes.codebooks * sizes.codesPerBook * sizes.quantizer.codeDim
  for (const { key, shape } of checkpointSpecs(sizes)) {
    if (
      /quantizer\.\d+\.embedding\.weight$/.test(key) ||
      key.includes('up_projectors.') ||
      key.includes('token_head.final_norm')
    )
      continue
    if (key.endsWith('token_head.position_embedding.weight'))
      bytes += 4 * (sizes.codebooks + 1) * sizes.blockDecoder.dModel
    else if (key.endsWith('tok_embeddings.embed_tokens.weight'))
      bytes += (p.embedding === 'fp16' ? 2 : 4) * elements(shape)
    else if (layerLinear.test(key)) bytes += matrixBytes(shape, p.linear)
    else if (key === 'model.model.output.weight') bytes += matrixBytes(shape, p.lmHead)
    else bytes += 4 * elements(shape)
  }
  return bytes
}

/**
 * The tensor data of the LLM's GGUF (gguf/qwen3-gguf.ts): linears at `type`, the head's text rows at
 * Q8_0 (F32 beside fp32), the table's text rows F32. The header adds the vocabulary (~5 MB for Qwen3's).
 */
export function ggufBytesEstimate(s: KelixCheckpointSizes, type: GgmlType): number {
  const q = s.heads * s.headDim
  const kv = s.kvHeads * s.headDim
  const layer =
    ggmlBytes(type, s.hidden * (q + 2 * kv) + q * s.hidden + 3 * s.hidden * s.intermediate) +
    4 * (2 * s.hidden + 2 * s.headDim)
  return (
    s.layers * layer +
    ggmlBytes(type === 'F32' ? 'F32' : 'Q8_0', s.textVocab * s.hidden) +
    4 * s.textVocab * s.hidden +
    4 * s.hidden
  )
}

/** Bytes of the files in `dir`. */
export async function dirBytes(dir: string): Promise<number> {
  let n = 0
  for (const f of await readdir(dir)) n += (await stat(join(dir, f))).size
  return n
}

/** Written last: a checkpoint directory without it is a run that was cut short. */
const COMPLETE = '.preset-complete'

export function isCheckpointComplete(dir: string): boolean {
  return existsSync(join(dir, COMPLETE))
}

/**
 * The bf16 checkpoint in `dir`, written unless a complete one is there (a
 * `--keep` run's, for the same sizes: the directory name carries them).
 */
export async function ensureCheckpoint(
  dir: string,
  sizes: KelixCheckpointSizes,
): Promise<{ seconds: number; reused: boolean }> {
  if (isCheckpointComplete(dir)) return { seconds: 0, reused: true }
  const specs = checkpointSpecs(sizes)
  const largest = specs.reduce((a, b) => (elements(b.shape) > elements(a.shape) ? b : a))
  await mkdir(dir, { recursive: true })
  const { seconds } = await writeSynthetic(dir, sizes, specs, largest)
  await writeFile(join(dir, COMPLETE), '')
  return { seconds, reused: false }
}

/** The export at `precision`, converted unless a complete one is there (the converter writes config.json last, atomically). */
export async function ensureExport(
  checkpoint: string,
  out: string,
  precision: Precision,
): Promise<{ seconds: number; reused: boolean }> {
  if (existsSync(join(out, 'config.json'))) return { seconds: 0, reused: true }
  const started = performance.now()
  await convertCheckpoint({ from: checkpoint, out, overwrite: true, precision })
  return { seconds: (performance.now() - started) / 1000, reused: false }
}
