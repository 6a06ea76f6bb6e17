/**
 * The served config.json (the model format's, src/engine/model-config.ts) and
 * the graphs' inner sizes, derived from the checkpoint: its `KeyeARConfig`,
 * its tokenizer files (special ids by their strings, checked against the
 * config) and its processor settings (`preprocessor_config.json`, documented
 * defaults where the release has none).
 */
import type { Architecture } from '../builder/architecture.js'
import type { KelixConfig, SpecialTokens } from '../engine/model-config.js'
import { parseConfig } from '../engine/model-config.js'
import { DEFAULT_ROW_MARKER } from '../engine/prompt/image-blocks.js'
import { isJsonObject } from './json-object.js'
import type { KeyeConfig } from './keye-config.js'
import { KelixError } from '../errors/kelix-error.js'

export const TOKENIZER_FILE = 'tokenizer.json'
export const PREPROCESSOR_FILE = 'preprocessor_config.json'

/**
 * Processor settings for what a release's preprocessor_config.json does not
 * say: at least one position (an image whose sides are whole positions is
 * never resampled up, as the reference's own pipeline feeds such images), at
 * most 28·28·1280 pixels (1,280 positions, Qwen2-VL's default and Kelix's
 * training maximum), mean = std = 0.5 (SigLIP's).
 */
export const PROCESSOR_DEFAULTS = {
  minPositions: 1,
  maxPositions: 1280,
  mergeSize: 2,
  mean: [0.5, 0.5, 0.5],
  std: [0.5, 0.5, 0.5],
} as const

/** Settings a release does not carry: the deployment's choices. */
export interface ServedOptions {
  /** Served model name (default: the output directory's name). */
  name: string
  /** Position cap for `image_url.detail: "low"` (default 256, within the processor's bounds). */
  lowDetailMaxPositions?: number
  /** Row marker text (default `{row},{cols}`). */
  rowMarker?: string
  /** Defaults for requests that do not say. */
  generation?: KelixConfig['generation']
}

export const DEFAULT_GENERATION: KelixConfig['generation'] = {
  max_new_tokens: 1024,
  temperature: 0.7,
  top_p: 0.9,
  top_k: 0,
}

type Json = Record<string, unknown>

/** The tokenizer strings of the special tokens Kelix refers to by name; `<eob>`'s string is not public, so it is found by id. */
const SPECIAL_STRINGS: Record<Exclude<keyof SpecialTokens, 'eob'>, string> = {
  im_start: '<|im_start|>',
  im_end: '<|im_end|>',
  vision_start: '<|vision_start|>',
  vision_end: '<|vision_end|>',
  image_pad: '<|image_pad|>',
  mm_pos_start: '<|mm_pos_start|>',
  mm_pos_end: '<|mm_pos_end|>',
}

export function deriveArchitecture(
  keye: KeyeConfig,
  tokenizerJson: Json,
  processor: Json | undefined,
  options: ServedOptions,
): Architecture {
  const { qwen, vision, quantizer, blockDecoder } = keye
  const perBook = qwen.codebookSize / qwen.codebooks
  const bounds = processorBounds(processor, vision.patchSize)
  const lowDetail = options.lowDetailMaxPositions ?? Math.min(bounds.maxPositions, Math.max(bounds.minPositions, 256))
  const config: KelixConfig = {
    format: 'kelix-onnx',
    format_version: 1,
    name: options.name,
    vocab: {
      text_vocab_size: qwen.vocabSize,
      num_codebooks: qwen.codebooks,
      codebook_size: perBook,
      visual_id_offset: qwen.vocabSize,
      vocab_size: qwen.vocabSize + qwen.codebookSize,
    },
    special_tokens: specialTokens(keye, tokenizerJson),
    block_size: blockDecoder.maxLength,
    vision: {
      patch_size: vision.patchSize,
      merge_size: bounds.mergeSize,
      min_positions: bounds.minPositions,
      max_positions: bounds.maxPositions,
      low_detail_max_positions: lowDetail,
      image_mean: bounds.mean,
      image_std: bounds.std,
      row_marker: options.rowMarker ?? DEFAULT_ROW_MARKER,
    },
    llm: {
      num_layers: qwen.layers,
      hidden_size: qwen.hidden,
      num_attention_heads: qwen.heads,
      num_key_value_heads: qwen.kvHeads,
      head_dim: qwen.headDim,
      max_position_embeddings: qwen.maxSeqLen,
      rope_theta: qwen.ropeBase,
      rms_norm_eps: qwen.normEps,
      kv_dtype: 'float32',
    },
    block_decoder: {
      hidden_size: blockDecoder.dModel,
      num_heads: blockDecoder.heads,
      intermediate_size: blockDecoder.feedForward,
    },
    generation: options.generation ?? DEFAULT_GENERATION,
  }
  checkLoadable(config)
  return {
    config,
    llmIntermediateSize: qwen.intermediate,
    vision: {
      width: vision.hidden,
      layers: vision.layers,
      heads: vision.heads,
      mlp: vision.intermediate,
      positionTable: Math.floor(vision.imageSize / vision.patchSize),
      layerNormEps: vision.layerNormEps,
      ropeTheta: vision.ropeTheta,
    },
    quantizer: { codeDim: quantizer.codeDim, tableWidth: quantizer.tableWidth, tableRows: qwen.codebookSize },
    blockDecoder: { layers: blockDecoder.layers, positionRows: blockDecoder.positionRows },
  }
}

/** The loader's own checks, before anything is written: a derived config it would refuse is the converter's error. */
export function checkLoadable(config: KelixConfig): void {
  try {
    parseConfig(JSON.stringify(config))
  } catch (err) {
    throw new KelixError('CONVERT_OPTION_INVALID', `the derived config.json would not load: ${(err as Error).message}`)
  }
}

/** Special ids: the config's where it names them, checked against the tokenizer's strings; the rest found by string. */
function specialTokens(keye: KeyeConfig, tokenizerJson: Json): SpecialTokens {
  const added = Array.isArray(tokenizerJson.added_tokens)
    ? (tokenizerJson.added_tokens as Array<{ id?: unknown; content?: unknown }>)
    : []
  const byContent = new Map(
    added
      .filter((t) => typeof t.content === 'string' && typeof t.id === 'number')
      .map((t) => [t.content as string, t.id as number]),
  )
  const contentOf = new Map([...byContent].map(([content, id]) => [id, content]))
  const find = (name: keyof typeof SPECIAL_STRINGS): number => {
    const id = byContent.get(SPECIAL_STRINGS[name])
    if (id === undefined) throw mismatch(`no added token ${SPECIAL_STRINGS[name]} (special_tokens.${name})`)
    return id
  }
  const tokens: SpecialTokens = {
    im_start: find('im_start'),
    im_end: find('im_end'),
    vision_start: find('vision_start'),
    vision_end: find('vision_end'),
    image_pad: find('image_pad'),
    eob: keye.qwen.eobTokenId,
    mm_pos_start: find('mm_pos_start'),
    mm_pos_end: find('mm_pos_end'),
  }
  const fromConfig: Array<[string, number, number]> = [
    ['eos_token_id', keye.qwen.eosTokenId, tokens.im_end],
    ['image_token_id', keye.qwen.imageTokenId, tokens.image_pad],
    ['vision_start_token_id', keye.qwen.visionStartTokenId, tokens.vision_start],
    ['vision_end_token_id', keye.qwen.visionEndTokenId, tokens.vision_end],
  ]
  for (const [field, configId, tokenizerId] of fromConfig) {
    if (configId !== tokenizerId)
      throw mismatch(
        `config.json qwen_config.${field} is ${configId}, but the tokenizer gives ${JSON.stringify(contentOf.get(tokenizerId))} id ${tokenizerId}`,
      )
  }
  if (!contentOf.has(tokens.eob))
    throw mismatch(`config.json qwen_config.q_eos_token is ${tokens.eob}, but no added token has that id`)
  for (const [name, id] of Object.entries(tokens)) {
    if (id >= keye.qwen.vocabSize)
      throw mismatch(`special_tokens.${name} id ${id} is outside the text vocabulary (${keye.qwen.vocabSize})`)
  }
  return tokens
}

function mismatch(detail: string): KelixError {
  return new KelixError('CHECKPOINT_TOKENIZER_MISMATCH', detail, { file: TOKENIZER_FILE })
}

interface ProcessorBounds {
  minPositions: number
  maxPositions: number
  mergeSize: number
  mean: number[]
  std: number[]
}

/**
 * Position bounds from the release's pixel bounds (Qwen2-VL: `min_pixels` and
 * `max_pixels`, or `size.shortest_edge` / `longest_edge` in newer files), one
 * position per (patch·merge)² pixels; documented defaults for what is absent.
 */
function processorBounds(processor: Json | undefined, patchSize: number): ProcessorBounds {
  const p = processor ?? {}
  const size = isJsonObject(p.size) ? p.size : {}
  const numberAt = (value: unknown, name: string): number | undefined => {
    if (value === undefined || value === null) return undefined
    if (typeof value !== 'number' || !(value > 0))
      throw new KelixError(
        'CHECKPOINT_CONFIG_INVALID',
        `${name} is ${JSON.stringify(value)}, expected a positive number`,
        { file: PREPROCESSOR_FILE },
      )
    return value
  }
  const merge = numberAt(p.merge_size, 'merge_size') ?? PROCESSOR_DEFAULTS.mergeSize
  const releasePatch = numberAt(p.patch_size, 'patch_size')
  if (releasePatch !== undefined && releasePatch !== patchSize) {
    throw new KelixError(
      'CHECKPOINT_CONFIG_INVALID',
      `patch_size is ${releasePatch}, but the vision config's patch_size is ${patchSize}`,
      { file: PREPROCESSOR_FILE },
    )
  }
  const pixelsPerPosition = (patchSize * merge) ** 2
  const minPixels = numberAt(p.min_pixels, 'min_pixels') ?? numberAt(size.shortest_edge, 'size.shortest_edge')
  const maxPixels = numberAt(p.max_pixels, 'max_pixels') ?? numberAt(size.longest_edge, 'size.longest_edge')
  const minPositions =
    minPixels === undefined ? PROCESSOR_DEFAULTS.minPositions : Math.max(1, Math.ceil(minPixels / pixelsPerPosition))
  const maxPositions =
    maxPixels === undefined ? PROCESSOR_DEFAULTS.maxPositions : Math.floor(maxPixels / pixelsPerPosition)
  const channels = (value: unknown, name: string, fallback: readonly number[]): number[] => {
    if (value === undefined) return [...fallback]
    if (!Array.isArray(value) || value.length !== 3 || value.some((v) => typeof v !== 'number')) {
      throw new KelixError('CHECKPOINT_CONFIG_INVALID', `${name} is ${JSON.stringify(value)}, expected three numbers`, {
        file: PREPROCESSOR_FILE,
      })
    }
    return value as number[]
  }
  return {
    minPositions,
    maxPositions,
    mergeSize: merge,
    mean: channels(p.image_mean, 'image_mean', PROCESSOR_DEFAULTS.mean),
    std: channels(p.image_std, 'image_std', PROCESSOR_DEFAULTS.std),
  }
}
