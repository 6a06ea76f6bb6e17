/**
 * The embedded default model: Kelix's architecture at a size a 2-core CPU
 * serves comfortably. `TINY_CONFIG` is the served config.json the conversion
 * of the tiny checkpoint gives (a test holds the two together); the inner
 * sizes only the graphs need are in `TINY_SIZES`, and both are written into
 * the tiny checkpoint's KeyeARConfig (tiny-checkpoint.ts).
 */
import type { ImageGenerationKelixConfig } from '../engine/model-config.js'
import type { DcAeSizes } from './dc-ae-checkpoint-layout.js'
import type { SanaCheckpointSizes } from './sana-checkpoint-layout.js'

export const TINY_SEED = 0x4b656c78 // "Kelx"

/**
 * Written into config.json as `builder`; bump it whenever the builder's output
 * changes, so a model directory built by an older checkout is rebuilt.
 */
export const TINY_BUILDER_VERSION = 'kelix-serve-tiny-11'

export const TINY_CONFIG: ImageGenerationKelixConfig = {
  format: 'kelix-onnx',
  format_version: 1,
  name: 'kelix-tiny',
  vocab: {
    text_vocab_size: 512,
    num_codebooks: 8,
    codebook_size: 512,
    visual_id_offset: 512,
    vocab_size: 512 + 8 * 512,
  },
  special_tokens: {
    im_start: 501,
    im_end: 502,
    vision_start: 503,
    vision_end: 504,
    image_pad: 505,
    eob: 506,
    mm_pos_start: 507,
    mm_pos_end: 508,
  },
  block_size: 9,
  vision: {
    patch_size: 14,
    merge_size: 2,
    min_positions: 4,
    max_positions: 256,
    low_detail_max_positions: 64,
    image_mean: [0.5, 0.5, 0.5],
    image_std: [0.5, 0.5, 0.5],
    row_marker: '{row},{cols}',
  },
  llm: {
    num_layers: 4,
    hidden_size: 256,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 64,
    max_position_embeddings: 4096,
    rope_theta: 1_000_000,
    rms_norm_eps: 1e-6,
    kv_dtype: 'float32',
  },
  block_decoder: { hidden_size: 128, num_heads: 4, intermediate_size: 512 },
  generation: { max_new_tokens: 256, temperature: 0.7, top_p: 0.9, top_k: 0 },
  image_generation: {
    grid: 6,
    condition_length: 96,
    latent_channels: 8,
    latent_size: 8,
    image_size: 64,
    steps: 8,
    shift: 3,
    guidance: 1,
    dit: { hidden_size: 64, num_layers: 2, num_heads: 4, patch_size: 1, intermediate_size: 160 },
  },
}

/** Sizes of the tiny checkpoint that config.json does not carry. */
export const TINY_SIZES = {
  llmIntermediate: 768,
  vision: { width: 128, layers: 2, heads: 4, mlp: 512, positionTable: 16, layerNormEps: 1e-6, ropeTheta: 10000 },
  /** Width of each sub-vector and codebook entry, and of the frozen tables they are projected from. */
  quantizer: { codeDim: 32, tableWidth: 64 },
  /** Learned slot rows in the checkpoint (the published table has more rows than the 9 used). */
  blockDecoderPositionRows: 17,
  /** Scales the LM head so logits spread over several units and greedy outputs vary with context. */
  lmHeadGain: 3,
  /**
   * Scales the LM head's <|im_end|> row: a random model that picks the end of
   * turn as often as any id ends most answers at once. Like the reference set's
   * `im_end_row_scale`, but downwards: answers usually run, and some still stop.
   */
  imEndRowScale: 0.5,
} as const

/** The tiny Kelix-DiT checkpoint (SANA's layout): what `image_generation` above says, at a width of 64. */
export const TINY_DIT_SIZES: SanaCheckpointSizes = {
  inputSize: TINY_CONFIG.image_generation.latent_size,
  patchSize: TINY_CONFIG.image_generation.dit.patch_size,
  inChannels: TINY_CONFIG.image_generation.latent_channels,
  hidden: TINY_CONFIG.image_generation.dit.hidden_size,
  depth: TINY_CONFIG.image_generation.dit.num_layers,
  crossHeads: TINY_CONFIG.image_generation.dit.num_heads,
  linearHeadDim: 16,
  mlpRatio: 2.5,
  captionChannels: 48,
  connectorChannels: TINY_CONFIG.llm.hidden_size,
  conditionLength: TINY_CONFIG.image_generation.condition_length,
  vaeDownsampleRate: TINY_CONFIG.image_generation.image_size / TINY_CONFIG.image_generation.latent_size,
}

/** The tiny DC-AE decoder (diffusers' layout): 8×8 latents to 64×64 pixels, two ResBlock then two EfficientViT stages. */
export const TINY_VAE_SIZES: DcAeSizes = {
  latentChannels: TINY_CONFIG.image_generation.latent_channels,
  blockOutChannels: [8, 16, 32, 32],
  layersPerBlock: [1, 1, 1, 1],
  blockTypes: ['ResBlock', 'ResBlock', 'EfficientViTBlock', 'EfficientViTBlock'],
  qkvMultiscales: [[], [], [5], [5]],
  attentionHeadDim: 8,
  upsampleBlockType: 'interpolate',
  inShortcut: true,
  scalingFactor: 0.41407,
}
