/**
 * diffusers' `AutoencoderDC` checkpoint layout, written from sizes: config.json
 * as `save_pretrained` writes it, and every decoder tensor of the state dict
 * with its shape and how a random model initialises it (the embedded tiny
 * model and the benchmark write random VAEs this way). Encoder tensors are not
 * listed: serving never reads them (diffusers' own strict loader would want them).
 */
import type { DcAeBlockType, DcAeUpsampleBlockType } from '../convert/dc-ae-config.js'
import type { TensorSpec } from './kelix-checkpoint-layout.js'

/** The sizes that fix every decoder shape; lists are per stage, image side first (diffusers' order). */
export interface DcAeSizes {
  latentChannels: number
  blockOutChannels: number[]
  layersPerBlock: number[]
  blockTypes: DcAeBlockType[]
  qkvMultiscales: number[][]
  attentionHeadDim: number
  upsampleBlockType: DcAeUpsampleBlockType
  inShortcut: boolean
  scalingFactor: number
  /** The encoder's layers per stage, for config.json only (default: the decoder's). */
  encoderLayersPerBlock?: number[]
}

/**
 * dc-ae-f32c32-sana-1.0 as diffusers' scripts/convert_dcae_to_diffusers.py
 * configures it (decoder_in_shortcut and the ReLU before conv_out are
 * AutoencoderDC's defaults).
 */
export const KELIX_VAE_SIZES: DcAeSizes = {
  latentChannels: 32,
  blockOutChannels: [128, 256, 512, 512, 1024, 1024],
  layersPerBlock: [3, 3, 3, 3, 3, 3],
  blockTypes: ['ResBlock', 'ResBlock', 'ResBlock', 'EfficientViTBlock', 'EfficientViTBlock', 'EfficientViTBlock'],
  qkvMultiscales: [[], [], [], [5], [5], [5]],
  attentionHeadDim: 32,
  upsampleBlockType: 'interpolate',
  inShortcut: true,
  scalingFactor: 0.41407,
  encoderLayersPerBlock: [2, 2, 2, 3, 3, 3],
}

/** The diffusers version the reference's config.json names. */
const DIFFUSERS_VERSION = '0.40.0.dev0'

/** config.json of an `AutoencoderDC` of `s` (keys sorted, as `save_pretrained` writes them); the encoder mirrors the decoder. */
export function dcAeConfigJson(s: DcAeSizes): Record<string, unknown> {
  return {
    _class_name: 'AutoencoderDC',
    _diffusers_version: DIFFUSERS_VERSION,
    attention_head_dim: s.attentionHeadDim,
    decoder_act_fns: 'silu',
    decoder_block_out_channels: [...s.blockOutChannels],
    decoder_block_types: [...s.blockTypes],
    decoder_conv_act_fn: 'relu',
    decoder_in_shortcut: s.inShortcut,
    decoder_layers_per_block: [...s.layersPerBlock],
    decoder_norm_types: 'rms_norm',
    decoder_qkv_multiscales: s.qkvMultiscales.map((k) => [...k]),
    // The encoder's counterpart of each upsampling type (DC-AE-sana pairs "interpolate" with "conv").
    downsample_block_type: s.upsampleBlockType === 'interpolate' ? 'conv' : 'pixel_unshuffle',
    encoder_block_out_channels: [...s.blockOutChannels],
    encoder_block_types: [...s.blockTypes],
    encoder_layers_per_block: [...(s.encoderLayersPerBlock ?? s.layersPerBlock)],
    encoder_out_shortcut: s.inShortcut,
    encoder_qkv_multiscales: s.qkvMultiscales.map((k) => [...k]),
    in_channels: 3,
    latent_channels: s.latentChannels,
    scaling_factor: s.scalingFactor,
    upsample_block_type: s.upsampleBlockType,
  }
}

/**
 * Scales conv_out so a random decoder's image has a standard deviation near
 * 0.5: its input is ReLU(RMSNorm(·)), whose mean square is about ½, so a
 * fan-in-scaled conv gives std ≈ gain·√½. Most pixels then stay inside the
 * [−1, 1] that is clamped to 8 bits.
 */
const CONV_OUT_GAIN = 0.7
const BIAS_STD = 0.02
/** GLUMBConv's hidden width ÷ channels (diffusers' default expand_ratio). */
const GLU_EXPAND = 4

/**
 * Every decoder tensor, with inits that keep activations near unit variance:
 * convolutions and Linears fan-in scaled, norm gains around 1 (each block's
 * RMSNorm then adds an O(1) residual, and norm_out renormalises before conv_out).
 */
export function dcAeDecoderTensorSpecs(s: DcAeSizes): TensorSpec[] {
  const specs: TensorSpec[] = []
  const conv = (key: string, out: number, inPerGroup: number, kernel: number, bias: boolean, gain = 1) => {
    specs.push({
      key: `${key}.weight`,
      shape: [out, inPerGroup, kernel, kernel],
      init: { std: gain / Math.sqrt(inPerGroup * kernel * kernel) },
    })
    if (bias) specs.push({ key: `${key}.bias`, shape: [out], init: { std: BIAS_STD } })
  }
  const linear = (key: string, out: number, inDim: number) =>
    specs.push({ key: `${key}.weight`, shape: [out, inDim], init: { std: 1 / Math.sqrt(inDim) } })
  const rmsNorm = (key: string, dim: number) => {
    specs.push({ key: `${key}.weight`, shape: [dim], init: { std: 0.1, center: 1 } })
    specs.push({ key: `${key}.bias`, shape: [dim], init: { std: BIAS_STD } })
  }
  const upsample = (key: string, out: number, inDim: number) =>
    conv(`${key}.conv`, s.upsampleBlockType === 'interpolate' ? out : 4 * out, inDim, 3, true)

  const n = s.blockOutChannels.length
  const width = (i: number) => s.blockOutChannels[i] as number
  conv('decoder.conv_in', width(n - 1), s.latentChannels, 3, true)
  for (let i = n - 1; i >= 0; i--) {
    const c = width(i)
    const layers = s.layersPerBlock[i] as number
    let index = 0
    if (i < n - 1 && layers > 0) upsample(`decoder.up_blocks.${i}.${index++}`, c, width(i + 1))
    for (let l = 0; l < layers; l++) {
      const block = `decoder.up_blocks.${i}.${index++}`
      if (s.blockTypes[i] === 'ResBlock') {
        conv(`${block}.conv1`, c, c, 3, true)
        conv(`${block}.conv2`, c, c, 3, false)
        rmsNorm(`${block}.norm`, c)
      } else {
        efficientVitSpecs(block, c, s.qkvMultiscales[i] ?? [], s.attentionHeadDim, { conv, linear, rmsNorm })
      }
    }
  }
  const outWidth = (s.layersPerBlock[0] as number) > 0 ? width(0) : width(1)
  rmsNorm('decoder.norm_out', outWidth)
  if ((s.layersPerBlock[0] as number) > 0) conv('decoder.conv_out', 3, outWidth, 3, true, CONV_OUT_GAIN)
  else conv('decoder.conv_out.conv', s.upsampleBlockType === 'interpolate' ? 3 : 12, outWidth, 3, true, CONV_OUT_GAIN)
  return specs
}

interface SpecWriters {
  conv(key: string, out: number, inPerGroup: number, kernel: number, bias: boolean): void
  linear(key: string, out: number, inDim: number): void
  rmsNorm(key: string, dim: number): void
}

/** An EfficientViTBlock's tensors: multi-scale attention (`attn`), then GLUMBConv (`conv_out`). */
function efficientVitSpecs(
  block: string,
  c: number,
  kernels: readonly number[],
  headDim: number,
  w: SpecWriters,
): void {
  const inner = Math.floor(c / headDim) * headDim
  for (const name of ['to_q', 'to_k', 'to_v']) w.linear(`${block}.attn.${name}`, inner, c)
  kernels.forEach((k, s) => {
    w.conv(`${block}.attn.to_qkv_multiscale.${s}.proj_in`, 3 * inner, 1, k, false)
    w.conv(`${block}.attn.to_qkv_multiscale.${s}.proj_out`, 3 * inner, headDim, 1, false)
  })
  w.linear(`${block}.attn.to_out`, c, inner * (1 + kernels.length))
  w.rmsNorm(`${block}.attn.norm_out`, c)
  const hidden = GLU_EXPAND * c
  w.conv(`${block}.conv_out.conv_inverted`, 2 * hidden, c, 1, true)
  w.conv(`${block}.conv_out.conv_depth`, 2 * hidden, 1, 3, true)
  w.conv(`${block}.conv_out.conv_point`, c, hidden, 1, false)
  w.rmsNorm(`${block}.conv_out.norm`, c)
}
