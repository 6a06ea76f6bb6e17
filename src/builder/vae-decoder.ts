/**
 * vae_decoder.onnx: image latents → pixels, a small convolutional decoder.
 *
 *   latents [B,C,s,s] ──► conv_in 3×3 ──► k × (SiLU → 2× nearest upsample → conv 3×3)
 *                     ──► SiLU → conv_out 3×3 → tanh ──► image [B,3,s·2ᵏ,s·2ᵏ] in [−1, 1]
 *
 * k = log2(image_size / latent_size); DC-AE in Kelix upsamples 32× (k = 5) with far wider stages.
 */
import type { ImageGenerationKelixConfig } from '../engine/model-config.js'
import { int, ints, str, type BuiltGraph } from './graph.js'
import { silu, type Ctx as LayerCtx } from './layers.js'
import type { SeededWeights } from './weights.js'

type Ctx = LayerCtx<SeededWeights>

export const VAE_DECODER_OPSET = 17

export interface VaeDecoderSpec {
  /** Channels after conv_in, then after each upsampling stage: k + 1 entries. */
  channels: number[]
}

/** Scales the convolutions so activations stay near unit variance and tanh does not saturate. */
const CONV_GAIN = 1.4

export function buildVaeDecoder(ctx: Ctx, config: ImageGenerationKelixConfig, spec: VaeDecoderSpec): BuiltGraph {
  const { g } = ctx
  const { latent_channels: latentChannels, latent_size: latentSize, image_size: imageSize } = config.image_generation
  const stages = Math.log2(imageSize / latentSize)
  if (!Number.isInteger(stages) || stages < 0) throw new Error(`image_size ${imageSize} is not latent_size ${latentSize} times a power of two`)
  if (spec.channels.length !== stages + 1) throw new Error(`the VAE decoder needs ${stages + 1} channel counts, got ${spec.channels.length}`)

  const latents = g.input('latents', 'float32', ['batch', latentChannels, latentSize, latentSize])
  const scales = g.floats([1, 1, 2, 2])
  const first = spec.channels[0] as number
  let x = conv(ctx, 'vae.decoder.conv_in', latents, latentChannels, first)
  for (let i = 0; i < stages; i++) {
    const from = spec.channels[i] as number
    const to = spec.channels[i + 1] as number
    const upsampled = g.op('Resize', [silu(g, x), '', scales], { mode: str('nearest'), coordinate_transformation_mode: str('asymmetric'), nearest_mode: str('floor') })
    x = conv(ctx, `vae.decoder.up_blocks.${i}.conv`, upsampled, from, to)
  }
  const last = spec.channels[stages] as number
  const image = g.op('Tanh', [conv(ctx, 'vae.decoder.conv_out', silu(g, x), last, 3)])
  g.output('image', 'float32', ['batch', 3, imageSize, imageSize], image)
  return g.finish(VAE_DECODER_OPSET, 'Kelix VAE decoder: image latents to pixels in [-1, 1]')
}

/** 3×3 convolution, stride 1, same padding, with bias. */
function conv(ctx: Ctx, name: string, x: string, inChannels: number, outChannels: number): string {
  const { g, w } = ctx
  const size = outChannels * inChannels * 9
  const weight = g.weight(`${name}.weight`, [outChannels, inChannels, 3, 3], w.random(`${name}.weight`, size, CONV_GAIN / Math.sqrt(inChannels * 9)))
  const bias = g.weight(`${name}.bias`, [outChannels], w.random(`${name}.bias`, outChannels, 0.02))
  return g.op('Conv', [x, weight, bias], { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]), strides: ints([1, 1]), group: int(1) })
}
