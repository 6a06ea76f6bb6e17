/**
 * Kelix-DiT's published checkpoint layout (`SanaModel`, no key prefix),
 * written from sizes: the `SanaConfig` dump (config.json) and every key of
 * `SanaModel.state_dict()` with its shape and how a random model initialises
 * it. A tiny random DiT and a benchmark at the real sizes are such checkpoints.
 */
import { SANA_CONFIG_DEFAULTS } from '../convert/sana-config.js'
import type { TensorSpec } from './kelix-checkpoint-layout.js'

/** The sizes that fix every shape of the checkpoint (the architecture flags are Kelix-DiT's). */
export interface SanaCheckpointSizes {
  /** Latent side. */
  inputSize: number
  patchSize: number
  /** Latent channels. */
  inChannels: number
  hidden: number
  depth: number
  /** Softmax cross-attention heads (`num_heads`). */
  crossHeads: number
  /** Head width of the linear self-attention. */
  linearHeadDim: number
  /** GLUMBConv width is int(hidden · mlpRatio). */
  mlpRatio: number
  captionChannels: number
  /** The LLM's hidden size (diffusion_connector input). */
  connectorChannels: number
  /** Rows of the null caption `y_embedder.y_embedding`. */
  conditionLength: number
  /** Image side / latent side (config only; the graph does not read it). */
  vaeDownsampleRate: number
}

/** The real Kelix-DiT (kelix-checkpoint.md, "Image generation"): 1024 px images from 32×32 latents. */
export const KELIX_DIT_SIZES: SanaCheckpointSizes = {
  inputSize: 32,
  patchSize: 1,
  inChannels: 32,
  hidden: 2240,
  depth: 20,
  crossHeads: 20,
  linearHeadDim: 32,
  mlpRatio: 2.5,
  captionChannels: 2304,
  connectorChannels: 4096,
  conditionLength: 720,
  vaeDownsampleRate: 32,
}

/** Sinusoidal timestep features the t_embedder reads. */
const FREQUENCY_DIM = 256

/** GLUMBConv's inner width, as the reference computes it. */
export function sanaFfnInner(s: SanaCheckpointSizes): number {
  return Math.trunc(s.hidden * s.mlpRatio)
}

/**
 * config.json as the reference's `config.save()` writes it: every `SanaConfig`
 * field in declaration order, `__class__` last. `model_max_length` is the true
 * condition length (the published file's is stale; the converter never reads it).
 */
export function sanaConfigJson(s: SanaCheckpointSizes): Record<string, unknown> {
  // SanaConfig's defaults in their field order, the sizes and Kelix-DiT's choices over them.
  return {
    ...SANA_CONFIG_DEFAULTS,
    input_size: s.inputSize,
    patch_size: s.patchSize,
    in_channels: s.inChannels,
    hidden_size: s.hidden,
    depth: s.depth,
    num_heads: s.crossHeads,
    mlp_ratio: s.mlpRatio,
    caption_channels: s.captionChannels,
    model_max_length: s.conditionLength,
    linear_head_dim: s.linearHeadDim,
    vae_downsample_rate: s.vaeDownsampleRate,
    use_connector: true,
    connector_channels: s.connectorChannels,
    __class__: 'SanaConfig',
  }
}

/**
 * Every tensor of the state dict, with inits that keep a random model's
 * velocity O(1): weights of std 1/√fan-in, norm gains around 1 (also
 * attention_y_norm's, so the condition weighs on the output), small adaLN
 * projections, and `pos_embed` all zeros (the buffer of a model without use_pe).
 */
export function sanaTensorSpecs(s: SanaCheckpointSizes): TensorSpec[] {
  const specs: TensorSpec[] = []
  const tensor = (key: string, shape: number[], std: number) => specs.push({ key, shape, init: { std } })
  const bias = (key: string, dim: number) => tensor(key, [dim], 0.02)
  const linear = (key: string, out: number, inDim: number, opts: { bias?: boolean; gain?: number } = {}) => {
    tensor(`${key}.weight`, [out, inDim], (opts.gain ?? 1) / Math.sqrt(inDim))
    if (opts.bias ?? true) bias(`${key}.bias`, out)
  }
  const gain = (key: string, dim: number) => specs.push({ key, shape: [dim], init: { std: 0.1, center: 1 } })

  const { hidden: d, patchSize: p } = s
  const inner = sanaFfnInner(s)
  const side = s.inputSize / p
  tensor('x_embedder.proj.weight', [d, s.inChannels, p, p], 1 / Math.sqrt(s.inChannels * p * p))
  bias('x_embedder.proj.bias', d)
  tensor('pos_embed', [1, side * side, d], 0)
  linear('t_embedder.mlp.0', d, FREQUENCY_DIM)
  linear('t_embedder.mlp.2', d, d)
  linear('t_block.1', 6 * d, d, { gain: 0.5 })
  linear('diffusion_connector.0', s.captionChannels, s.connectorChannels)
  linear('diffusion_connector.2', s.captionChannels, s.captionChannels)
  gain('diffusion_connector.3.weight', s.captionChannels)
  // The null caption is in caption space, where the connector's RMSNorm puts rows of RMS ~1.
  tensor('y_embedder.y_embedding', [s.conditionLength, s.captionChannels], 1)
  linear('y_embedder.y_proj.fc1', d, s.captionChannels)
  linear('y_embedder.y_proj.fc2', d, d)
  gain('attention_y_norm.weight', d)
  for (let i = 0; i < s.depth; i++) {
    const b = `blocks.${i}`
    tensor(`${b}.scale_shift_table`, [6, d], 1 / Math.sqrt(d))
    for (const n of ['to_q', 'to_k', 'to_v']) linear(`${b}.attn.${n}`, d, d, { bias: false })
    linear(`${b}.attn.proj`, d, d)
    for (const n of ['q_linear', 'to_k', 'to_v', 'proj']) linear(`${b}.cross_attn.${n}`, d, d)
    tensor(`${b}.mlp.inverted_conv.conv.weight`, [2 * inner, d, 1, 1], 1 / Math.sqrt(d))
    bias(`${b}.mlp.inverted_conv.conv.bias`, 2 * inner)
    tensor(`${b}.mlp.depth_conv.conv.weight`, [2 * inner, 1, 3, 3], 1 / 3)
    bias(`${b}.mlp.depth_conv.conv.bias`, 2 * inner)
    tensor(`${b}.mlp.point_conv.conv.weight`, [d, inner, 1, 1], 1 / Math.sqrt(inner))
  }
  tensor('final_layer.scale_shift_table', [2, d], 1 / Math.sqrt(d))
  linear('final_layer.linear', p * p * s.inChannels, d)
  return specs
}
