/**
 * The embedded default model: Kelix's architecture at a size a 2-core CPU
 * serves comfortably. Sizes the engine needs go to config.json; sizes only the
 * builder needs (inner widths of the graphs) stay here.
 */
import type { ImageGenerationKelixConfig } from '../engine/model-config.js'
import type { VaeDecoderSpec } from './vae-decoder.js'
import type { VisionEncoderSpec } from './visual-tokenizer.js'

export const TINY_SEED = 0x4b656c78 // "Kelx"

/**
 * Written into config.json as `builder`; bump it whenever the builder's output
 * changes, so a model directory built by an older checkout is rebuilt.
 */
export const TINY_BUILDER_VERSION = 'kelix-serve-tiny-6'

export const TINY_CONFIG: ImageGenerationKelixConfig = {
  format: 'kelix-onnx',
  format_version: 1,
  name: 'kelix-tiny',
  vocab: { text_vocab_size: 512, num_codebooks: 8, codebook_size: 512, visual_id_offset: 512, vocab_size: 512 + 8 * 512 },
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
    latent_channels: 4,
    latent_size: 8,
    image_size: 64,
    steps: 8,
    shift: 3,
    guidance: 1,
    dit: { hidden_size: 64, num_layers: 2, num_heads: 4, patch_size: 2, intermediate_size: 256 },
  },
}

export const TINY_LLM_INTERMEDIATE = 768
/** Scales the LM head so logits spread over several units and greedy outputs vary with context. */
export const TINY_LM_HEAD_GAIN = 3

export const TINY_VISION: VisionEncoderSpec = {
  width: 128,
  layers: 2,
  heads: 4,
  mlp: 512,
  positionTable: 16,
  mergerHidden: 256,
  codeDim: 32,
}

/** Channels of the tiny VAE decoder: after conv_in, then after each 2× upsampling stage (8 → 16 → 32 → 64). */
export const TINY_VAE: VaeDecoderSpec = { channels: [64, 32, 16, 16] }
