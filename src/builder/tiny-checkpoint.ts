/**
 * The tiny model's checkpoint: Kelix's published layout (config.json with
 * `KeyeARConfig`, bf16 safetensors shards counted from zero, the index,
 * tokenizer and processor files) at the tiny sizes, with deterministic random
 * weights. The embedded model is this checkpoint run through the converter, so
 * tiny and real differ only in sizes.
 */
import { writeCheckpoint, type TensorToWrite } from '../convert/checkpoint.js'
import {
  keyeArConfig,
  kelixTensorSpecs,
  type KelixCheckpointSizes,
  type TensorSpec,
} from './kelix-checkpoint-layout.js'
import { elementCount } from './tensor-data.js'
import { buildTokenizerFiles } from './text-tokenizer.js'
import { dcAeConfigJson, dcAeDecoderTensorSpecs } from './dc-ae-checkpoint-layout.js'
import { sanaConfigJson, sanaTensorSpecs } from './sana-checkpoint-layout.js'
import { TINY_CONFIG, TINY_DIT_SIZES, TINY_SIZES, TINY_VAE_SIZES } from './tiny.js'
import { SeededWeights } from './weights.js'

/** Shards as small as the reference's tiny set, so the tiny checkpoint has several. */
const TINY_SHARD_BYTES = 8 * 1024 * 1024

export const TINY_CHECKPOINT_SIZES: KelixCheckpointSizes = {
  textVocab: TINY_CONFIG.vocab.text_vocab_size,
  codebooks: TINY_CONFIG.vocab.num_codebooks,
  codesPerBook: TINY_CONFIG.vocab.codebook_size,
  hidden: TINY_CONFIG.llm.hidden_size,
  layers: TINY_CONFIG.llm.num_layers,
  heads: TINY_CONFIG.llm.num_attention_heads,
  kvHeads: TINY_CONFIG.llm.num_key_value_heads,
  headDim: TINY_CONFIG.llm.head_dim,
  intermediate: TINY_SIZES.llmIntermediate,
  maxSeqLen: TINY_CONFIG.llm.max_position_embeddings,
  ropeBase: TINY_CONFIG.llm.rope_theta,
  normEps: TINY_CONFIG.llm.rms_norm_eps,
  vision: { ...TINY_SIZES.vision, patchSize: TINY_CONFIG.vision.patch_size },
  quantizer: { ...TINY_SIZES.quantizer, upProjection: TINY_SIZES.vision.width },
  blockDecoder: {
    dModel: TINY_CONFIG.block_decoder.hidden_size,
    heads: TINY_CONFIG.block_decoder.num_heads,
    layers: 1,
    feedForward: TINY_CONFIG.block_decoder.intermediate_size,
    positionRows: TINY_SIZES.blockDecoderPositionRows,
  },
  ids: {
    eos: TINY_CONFIG.special_tokens.im_end,
    imagePad: TINY_CONFIG.special_tokens.image_pad,
    visionStart: TINY_CONFIG.special_tokens.vision_start,
    visionEnd: TINY_CONFIG.special_tokens.vision_end,
    eob: TINY_CONFIG.special_tokens.eob,
  },
  lmHeadGain: TINY_SIZES.lmHeadGain,
}

/** Every tensor of `specs` (a checkpoint layout's), with deterministic random values as each spec's init says. */
export function seededTensors(specs: readonly TensorSpec[], seed: number): Map<string, TensorToWrite> {
  const random = new SeededWeights(seed)
  return new Map(specs.map((spec) => [spec.key, { shape: spec.shape, data: seededValues(random, spec) }]))
}

/** One tensor's deterministic random values, as its spec's init says (for writers that hold one tensor at a time). */
export function seededValues(random: SeededWeights, { key, shape, init }: TensorSpec): Float32Array {
  const size = elementCount(shape)
  return init.center === undefined
    ? random.random(key, size, init.std)
    : random.around(key, size, init.center, init.std)
}

/** Writes the tiny Kelix-DiT checkpoint (SanaConfig, bf16 shards) for `seed` into `dir`. */
export async function writeTinyDitCheckpoint(dir: string, seed: number): Promise<void> {
  await writeCheckpoint(dir, seededTensors(sanaTensorSpecs(TINY_DIT_SIZES), seed), {
    dtype: 'BF16',
    shardBytes: TINY_SHARD_BYTES,
    extraFiles: { 'config.json': json(sanaConfigJson(TINY_DIT_SIZES)) },
  })
}

/** Writes the tiny DC-AE checkpoint (diffusers' AutoencoderDC, decoder only, float32 like the release) for `seed` into `dir`. */
export async function writeTinyVaeCheckpoint(dir: string, seed: number): Promise<void> {
  await writeCheckpoint(dir, seededTensors(dcAeDecoderTensorSpecs(TINY_VAE_SIZES), seed), {
    dtype: 'F32',
    shardBytes: TINY_SHARD_BYTES,
    extraFiles: { 'config.json': json(dcAeConfigJson(TINY_VAE_SIZES)) },
  })
}

function json(value: object): string {
  return `${JSON.stringify(value, null, 2)}\n`
}

/** Writes the tiny checkpoint for `seed` into `dir`. */
export async function writeTinyCheckpoint(dir: string, seed: number): Promise<void> {
  const tensors = seededTensors(kelixTensorSpecs(TINY_CHECKPOINT_SIZES), seed)
  const head = tensors.get('model.model.output.weight')?.data
  const hidden = TINY_CONFIG.llm.hidden_size
  head
    ?.subarray(TINY_CONFIG.special_tokens.im_end * hidden, (TINY_CONFIG.special_tokens.im_end + 1) * hidden)
    .forEach((v, i, row) => (row[i] = v * TINY_SIZES.imEndRowScale))
  const { tokenizerJson, tokenizerConfig } = buildTokenizerFiles(TINY_CONFIG)
  const pixelsPerPosition = (TINY_CONFIG.vision.patch_size * TINY_CONFIG.vision.merge_size) ** 2
  await writeCheckpoint(dir, tensors, {
    dtype: 'BF16',
    shardBytes: TINY_SHARD_BYTES,
    extraFiles: {
      'config.json': json(keyeArConfig(TINY_CHECKPOINT_SIZES)),
      'tokenizer.json': json(tokenizerJson),
      'tokenizer_config.json': json(tokenizerConfig),
      'preprocessor_config.json': json({
        image_processor_type: 'Qwen2VLImageProcessor',
        patch_size: TINY_CONFIG.vision.patch_size,
        merge_size: TINY_CONFIG.vision.merge_size,
        temporal_patch_size: 1,
        min_pixels: TINY_CONFIG.vision.min_positions * pixelsPerPosition,
        max_pixels: TINY_CONFIG.vision.max_positions * pixelsPerPosition,
        image_mean: TINY_CONFIG.vision.image_mean,
        image_std: TINY_CONFIG.vision.image_std,
        resample: 3,
      }),
    },
  })
}
