/**
 * Converts a checkpoint in the published Kelix layout into a model directory
 * the server serves (docs/model-format.md):
 *
 *   open ──► read config.json, tokenizer and processor files ──► derive the served config
 *        ──► build the three understanding graphs, and the DiT and VAE decoder when their
 *            checkpoints are given (every key's shape checked here, before anything is
 *            written; image-decoder.ts) ──► write the tokenizer files
 *        ──► write each graph and its external data, streaming weights from the shards ──► config.json last
 *
 * `convertCheckpoint` writes into a staging directory beside the output and
 * renames it into place at the end: an interrupted conversion leaves no
 * directory that looks loadable.
 */
import { existsSync } from 'node:fs'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'
import type { Architecture } from '../builder/architecture.js'
import { buildBlockDecoder, type BlockDecoderOptions } from '../builder/block-decoder.js'
import { buildDecoder, embeddingTable, type CacheOutputs, type DecoderOps } from '../builder/decoder.js'
import { GraphBuilder, type BuiltGraph } from '../builder/graph.js'
import { precisionConfig, resolvePrecision, type Precision } from '../builder/precision.js'
import { buildVisualTokenizer } from '../builder/visual-tokenizer.js'
import { MODEL_FILES } from '../engine/graph-signatures.js'
import type { KelixConfig } from '../engine/model-config.js'
import { Checkpoint, readCheckpointFile } from './checkpoint.js'
import { CheckpointTensors } from './checkpoint-weights.js'
import { precomputedCodebooks } from './codebooks.js'
import { writeModelDirAtomically } from './model-dir.js'
import {
  imageDecoderDirs,
  openImageDecoder,
  type ImageGenerationOptions,
  type OpenedImageDecoder,
} from './image-decoder.js'
import { parseJsonObject } from './json-object.js'
import { KEYE_CONFIG_FILE, parseKeyeConfig } from './keye-config.js'
import { SILENT, type Progress } from './progress.js'
import {
  checkLoadable,
  deriveArchitecture,
  PREPROCESSOR_FILE,
  TOKENIZER_FILE,
  type ServedOptions,
} from './served-config.js'
import { shapeReason } from './shape-reasons.js'
import { partlyUsedFamilies, unusedFamilies, type PartlyUsedFamily, type UnusedFamily } from './unused-keys.js'
import { KelixError } from '../errors/kelix-error.js'

const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json'
const CHAT_TEMPLATE_FILE = 'chat_template.json'

export interface ConvertOptions extends Partial<ServedOptions>, ImageDecoderOptions {
  /** The checkpoint directory (config.json, shards, index, tokenizer files). */
  from: string
  /** The model directory to write. */
  out: string
  /** Replace `out` if it exists (default: refuse a non-empty one). */
  overwrite?: boolean
  progress?: Progress
  /** The decoder's cache outputs (default `delta`, what the server wants). */
  cacheOutputs?: CacheOutputs
  /** The decoder's operators (default `fused`: ONNX Runtime's contrib kernels; `portable`: standard ONNX only). */
  decoderOps?: DecoderOps
  /** How the LLM's weights are stored (default fp32 throughout; the LM head follows the linears: precision.ts). */
  precision?: Partial<Precision>
}

/** The image decoder's checkpoints (default: `dit/` and `vae/` inside the checkpoint, if there) and settings. */
export interface ImageDecoderOptions {
  dit?: string
  vae?: string
  imageGeneration?: ImageGenerationOptions
}

export interface GraphSummary {
  file: string
  graphBytes: number
  dataBytes: number
  parameters: number
}

export interface ConversionSummary {
  config: KelixConfig & Record<string, unknown>
  graphs: GraphSummary[]
  /** Checkpoint tensors no graph reads, by family (`….layers.{i}.…`), with their element counts. */
  unused: UnusedFamily[]
  /** Tensors of which only some rows are read, by family. */
  partlyUsed: PartlyUsedFamily[]
  /** Keys a shard holds that the index does not list (ignored). */
  unindexed: string[]
  seconds: number
}

/** Converts `from` into `out`, atomically. */
export async function convertCheckpoint(options: ConvertOptions): Promise<ConversionSummary> {
  const out = resolve(options.out)
  if (!options.overwrite && existsSync(out) && (await readdir(out)).length > 0) {
    throw new KelixError('CONVERT_OUTPUT_EXISTS', `${out} exists and is not empty (pass --overwrite to replace it)`)
  }
  return writeModelDirAtomically(
    out,
    (staging) => writeConvertedModel(options.from, staging, { ...options, name: options.name ?? basename(out) }),
    { replace: true },
  )
}

/** What `writeConvertedModel` adds to the served options. */
export interface WriteOptions extends ServedOptions, ImageDecoderOptions {
  progress?: Progress
  cacheOutputs?: CacheOutputs
  decoderOps?: DecoderOps
  blockDecoder?: BlockDecoderOptions
  /** How the LLM's weights are stored (completed by `resolvePrecision`: default fp32 throughout). */
  precision?: Partial<Precision>
  /** config.json fields to add (the tiny model's builder tag). */
  extraConfig?: Record<string, unknown>
}

/** Writes the converted model into `dir`, which exists and is empty. */
export async function writeConvertedModel(
  from: string,
  dir: string,
  options: WriteOptions,
): Promise<ConversionSummary> {
  const started = performance.now()
  const checkpoint = await Checkpoint.open(from)
  let imageDecoder: OpenedImageDecoder | undefined
  try {
    const files = await readCheckpointFiles(from)
    const keye = parseKeyeConfig(files.config)
    const arch = deriveArchitecture(keye, files.tokenizer, files.processor, options)
    const weights = new CheckpointTensors(checkpoint, (key) => shapeReason(keye, key))
    const precision = resolvePrecision(options.precision)
    const graphs = buildGraphs(arch, weights, precision, options)
    const dirs = imageDecoderDirs(from, options)
    if (dirs !== undefined)
      imageDecoder = await openImageDecoder(
        dirs,
        arch.config,
        { tokenizerJson: files.tokenizer, tokenizerConfig: files.tokenizerConfig },
        options.imageGeneration,
      )
    const unused = [
      ...unusedFamilies(
        checkpoint.keys().filter((key) => !weights.used.has(key)),
        (key) => checkpoint.parameterCount(key),
      ),
      ...(imageDecoder?.unused ?? []),
    ]

    const quantization = precisionConfig(precision)
    const config = {
      ...arch.config,
      ...(imageDecoder === undefined ? {} : { image_generation: imageDecoder.config }),
      ...(quantization === undefined ? {} : { precision: quantization }),
      ...options.extraConfig,
    }
    checkLoadable(config)
    await writeFile(join(dir, MODEL_FILES.tokenizer), files.tokenizerText)
    await writeFile(join(dir, MODEL_FILES.tokenizerConfig), `${JSON.stringify(files.tokenizerConfig, null, 2)}\n`)
    const progress = options.progress ?? SILENT
    const summaries: GraphSummary[] = []
    for (const [file, graph] of Object.entries({ ...graphs, ...imageDecoder?.graphs })) {
      progress.stage(file, graph.weights.count, graph.weights.bytes)
      const saved = await graph.save(join(dir, file), (bytes) => progress.weight(bytes))
      progress.done()
      summaries.push({ file, ...saved })
    }
    // Last: a directory without config.json is not a model, so one cut short never looks loadable.
    await writeFile(join(dir, MODEL_FILES.config), `${JSON.stringify(config, null, 2)}\n`)
    return {
      config,
      graphs: summaries,
      unused,
      partlyUsed: partlyUsedFamilies(weights.partlyUsed),
      unindexed: checkpoint.unindexedKeys(),
      seconds: (performance.now() - started) / 1000,
    }
  } finally {
    await checkpoint.close()
    await imageDecoder?.close()
  }
}

/** The three understanding graphs; building them checks every key they read. */
function buildGraphs(
  arch: Architecture,
  weights: CheckpointTensors,
  precision: Precision,
  options: WriteOptions,
): Record<string, BuiltGraph> {
  const ctx = (name: string) => ({ g: new GraphBuilder(name), w: weights })
  const table = embeddingTable(weights, arch.config, precision.embedding)
  return {
    [MODEL_FILES.visualTokenizer]: buildVisualTokenizer(
      ctx('kelix_visual_tokenizer'),
      arch,
      precomputedCodebooks(weights, arch),
    ),
    [MODEL_FILES.decoder]: buildDecoder(
      ctx('kelix_decoder'),
      arch,
      table,
      options.cacheOutputs,
      precision,
      options.decoderOps ?? 'fused',
    ),
    [MODEL_FILES.blockDecoder]: buildBlockDecoder(
      ctx('kelix_block_decoder'),
      arch,
      table,
      options.blockDecoder,
      precision,
    ),
    // Written once, read by both: the OS holds it once however many sessions map it.
    [table.file]: table,
  }
}

interface CheckpointFiles {
  config: string
  tokenizerText: string
  tokenizer: Record<string, unknown>
  /** tokenizer_config.json with `chat_template` filled in from chat_template.json when only that file has it. */
  tokenizerConfig: Record<string, unknown>
  processor: Record<string, unknown> | undefined
}

async function readCheckpointFiles(from: string): Promise<CheckpointFiles> {
  const required = (file: string) => readCheckpointFile(from, file)
  const optional = async (file: string, code: JsonErrorCode) =>
    existsSync(join(from, file)) ? jsonObject(await readFile(join(from, file), 'utf8'), file, code) : undefined
  const config = await required(KEYE_CONFIG_FILE)
  const tokenizerText = await required(TOKENIZER_FILE)
  const tokenizer = jsonObject(tokenizerText, TOKENIZER_FILE, 'CHECKPOINT_TOKENIZER_MISMATCH')
  const tokenizerConfig = jsonObject(
    await required(TOKENIZER_CONFIG_FILE),
    TOKENIZER_CONFIG_FILE,
    'CHECKPOINT_TOKENIZER_MISMATCH',
  )
  if (typeof tokenizerConfig.chat_template !== 'string') {
    const template = (await optional(CHAT_TEMPLATE_FILE, 'CHECKPOINT_TOKENIZER_MISMATCH'))?.chat_template
    if (typeof template !== 'string') {
      throw new KelixError('CHECKPOINT_TOKENIZER_MISMATCH', `no chat_template here or in ${CHAT_TEMPLATE_FILE}`, {
        file: TOKENIZER_CONFIG_FILE,
      })
    }
    tokenizerConfig.chat_template = template
  }
  return {
    config,
    tokenizerText,
    tokenizer,
    tokenizerConfig,
    processor: await optional(PREPROCESSOR_FILE, 'CHECKPOINT_CONFIG_INVALID'),
  }
}

type JsonErrorCode = 'CHECKPOINT_TOKENIZER_MISMATCH' | 'CHECKPOINT_CONFIG_INVALID'

function jsonObject(text: string, file: string, code: JsonErrorCode): Record<string, unknown> {
  return parseJsonObject(text, (detail) => new KelixError(code, detail, { file: file }))
}
