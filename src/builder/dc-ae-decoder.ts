/**
 * vae_decoder.onnx: the DC-AE decoder (diffusers `AutoencoderDC.decoder`,
 * checkpoint keys `decoder.…`), for one latent size fixed at build time.
 *
 *   latents [B, C_lat, s, s]  (the DiT's space)
 *     ──► ÷ scaling_factor
 *     ──► conv_in 3×3  (+ the latents with each channel repeated, when decoder_in_shortcut)
 *     ──► stage n−1, n−2, …, 0  (diffusers' up_blocks, run from the last):
 *           every stage but the last starts with an upsampling block (up_blocks.i.0):
 *             interpolate:   nearest ×2 → conv 3×3          ┐
 *             pixel_shuffle: conv 3×3 to 4× channels → d2s  ├─ + channels repeated → d2s (shortcut)
 *           then `layers` blocks of the stage's type:
 *             ResBlock:          x + RMSNorm(conv 3×3 (act(conv 3×3 x)))
 *             EfficientViTBlock: x + RMSNorm(to_out(ReLU linear attention over q,k,v and their
 *                                    5×5-aggregated copies));  x + RMSNorm(GLUMBConv(x))
 *     ──► norm_out (RMSNorm) → conv act (ReLU) → conv_out 3×3
 *     ──► image [B, 3, s·f, s·f], raw (nominally [−1, 1], not clamped)
 *
 * d2s = DepthToSpace in CRD mode, which is torch's pixel_shuffle: output
 * channel c at sub-pixel (i, j) is input channel 4c + 2i + j. Everything stays
 * NCHW: diffusers moves channels last only to apply its Linears and RMSNorms,
 * which here are 1×1 convolutions and norms over the channel axis.
 */
import type { DcAeActivation, DcAeConfig, DcAeStage } from '../convert/dc-ae-config.js'
import { int, ints, str, type BuiltGraph, type GraphBuilder } from './graph.js'
import { silu, gelu, type Ctx as LayerCtx } from './layers.js'
import { reshaped } from './tensor-data.js'
import type { CheckpointWeights } from './weights.js'

type Ctx = LayerCtx<CheckpointWeights>

export const DC_AE_DECODER_OPSET = 17

const PREFIX = 'decoder'
/** Every RMSNorm of the decoder: get_normalization's default, GLUMBConv's and norm_out's. */
const NORM_EPS = 1e-5
/** SanaMultiscaleLinearAttention's default eps, added to the attention's normaliser. */
const ATTENTION_EPS = 1e-15
/** GLUMBConv's default expand_ratio, which DC-AE keeps: hidden width = 4 × channels. */
const GLU_EXPAND = 4

/** A feature map [B, channels, side, side]: its value name and sizes. */
interface Feature {
  x: string
  channels: number
  side: number
}

/** The decoder graph for latents of `latentSize`² (image side = latentSize × config.upsamplingFactor). */
export function buildDcAeDecoder(ctx: Ctx, config: DcAeConfig, latentSize: number): BuiltGraph {
  const { g } = ctx
  if (!Number.isInteger(latentSize) || latentSize <= 0)
    throw new Error(`latent size ${latentSize} is not a positive integer`)
  const imageSize = latentSize * config.upsamplingFactor
  const latents = g.input('latents', 'float32', ['batch', config.latentChannels, latentSize, latentSize])
  // The DiT works on latents × scaling_factor; the decoder takes them back (`latents / scaling_factor`, float32).
  const z = g.op('Div', [latents, g.scalar(config.scalingFactor)])
  let f = decoderIn(ctx, config, { x: z, channels: config.latentChannels, side: latentSize })
  for (let i = config.stages.length - 1; i >= 0; i--) f = decoderStage(ctx, config, i, f)
  const image = decoderOut(ctx, config, f)
  if (image.side !== imageSize || image.channels !== config.imageChannels) {
    throw new Error(
      `the decoder gives [${image.channels}, ${image.side}, ${image.side}], expected [${config.imageChannels}, ${imageSize}, ${imageSize}]`,
    )
  }
  g.output('image', 'float32', ['batch', config.imageChannels, imageSize, imageSize], image.x)
  return g.finish(
    DC_AE_DECODER_OPSET,
    'Kelix VAE decoder: DC-AE (diffusers AutoencoderDC), latents in the DiT space to raw pixels, nominally [-1, 1]',
  )
}

/** conv_in, plus the latents with each channel repeated to its width (diffusers' repeat_interleave) when in_shortcut. */
function decoderIn(ctx: Ctx, config: DcAeConfig, z: Feature): Feature {
  const width = (config.stages[config.stages.length - 1] as DcAeStage).channels
  const x = conv(ctx, `${PREFIX}.conv_in`, z, { out: width, kernel: 3, bias: true })
  if (!config.inShortcut) return x
  const shortcut = repeatChannels(ctx.g, z, width / z.channels)
  return { ...x, x: ctx.g.op('Add', [x.x, shortcut.x]) }
}

/** up_blocks.i: its upsampling block (every stage but the last, when it has layers), then its blocks. */
function decoderStage(ctx: Ctx, config: DcAeConfig, i: number, input: Feature): Feature {
  const stage = config.stages[i] as DcAeStage
  const key = `${PREFIX}.up_blocks.${i}`
  let f = input
  let index = 0
  if (i < config.stages.length - 1 && stage.layers > 0) {
    f = upsample(ctx, `${key}.${index++}`, f, {
      out: stage.channels,
      interpolate: config.upsampleBlockType === 'interpolate',
      shortcut: true,
    })
  }
  for (let l = 0; l < stage.layers; l++) {
    const block = `${key}.${index++}`
    f =
      stage.blockType === 'ResBlock'
        ? resBlock(ctx, block, f, stage)
        : efficientVitBlock(ctx, block, f, stage, config.attentionHeadDim)
  }
  return f
}

/** norm_out → conv act → conv_out; with no layers in stage 0, conv_out is itself an upsampling block (diffusers). */
function decoderOut(ctx: Ctx, config: DcAeConfig, f: Feature): Feature {
  const normed = { ...f, x: activation(ctx.g, config.convActFn, channelRmsNorm(ctx, `${PREFIX}.norm_out`, f)) }
  const key = `${PREFIX}.conv_out`
  if ((config.stages[0] as DcAeStage).layers > 0)
    return conv(ctx, key, normed, { out: config.imageChannels, kernel: 3, bias: true })
  return upsample(ctx, key, normed, {
    out: config.imageChannels,
    interpolate: config.upsampleBlockType === 'interpolate',
    shortcut: false,
  })
}

/** DCUpBlock2d: the side doubled, `out` channels, plus (shortcut) the input's channels repeated and pixel-shuffled. */
function upsample(
  ctx: Ctx,
  key: string,
  f: Feature,
  opts: { out: number; interpolate: boolean; shortcut: boolean },
): Feature {
  const { g } = ctx
  let x: Feature
  if (opts.interpolate) {
    // torch's nearest ×2: source index floor(dst / 2).
    const resized = g.op('Resize', [f.x, '', g.floats([1, 1, 2, 2])], {
      mode: str('nearest'),
      coordinate_transformation_mode: str('asymmetric'),
      nearest_mode: str('floor'),
    })
    x = conv(ctx, `${key}.conv`, { ...f, x: resized, side: f.side * 2 }, { out: opts.out, kernel: 3, bias: true })
  } else {
    x = depthToSpace(g, conv(ctx, `${key}.conv`, f, { out: opts.out * 4, kernel: 3, bias: true }))
  }
  if (!opts.shortcut) return x
  // diffusers: repeats = out·4 // in; the config parser checked that it divides.
  const shortcut = depthToSpace(g, repeatChannels(g, f, (opts.out * 4) / f.channels))
  return { ...x, x: g.op('Add', [x.x, shortcut.x]) }
}

/** ResBlock: x + RMSNorm(conv2(act(conv1(x)))), conv2 without bias. */
function resBlock(ctx: Ctx, key: string, f: Feature, stage: DcAeStage): Feature {
  const hidden = conv(ctx, `${key}.conv1`, f, { out: f.channels, kernel: 3, bias: true })
  const activated = { ...hidden, x: activation(ctx.g, stage.actFn, hidden.x) }
  const out = conv(ctx, `${key}.conv2`, activated, { out: stage.channels, kernel: 3, bias: false })
  return { ...out, x: ctx.g.op('Add', [channelRmsNorm(ctx, `${key}.norm`, out), f.x]) }
}

/** EfficientViTBlock: multi-scale linear attention, then GLUMBConv, each with its residual. */
function efficientVitBlock(ctx: Ctx, key: string, f: Feature, stage: DcAeStage, headDim: number): Feature {
  return gluMbConv(ctx, `${key}.conv_out`, multiscaleAttention(ctx, `${key}.attn`, f, stage.qkvMultiscales, headDim))
}

/**
 * SanaMultiscaleLinearAttention with SanaMultiscaleAttnProcessor2_0, in float32.
 *
 * q, k, v (1×1, no bias) are concatenated as channels [q | k | v]; each kernel
 * size adds a copy aggregated by a depthwise k×k conv and a 1×1 conv grouped
 * by head_dim channels. The result is cut into groups of 3·head_dim
 * consecutive channels, each group's thirds being one head's q, k and v: this
 * mixes heads of q, k and v exactly as diffusers' reshape does.
 */
function multiscaleAttention(
  ctx: Ctx,
  key: string,
  f: Feature,
  kernelSizes: readonly number[],
  headDim: number,
): Feature {
  const { g } = ctx
  const inner = Math.floor(f.channels / headDim) * headDim
  const qkvChannels = 3 * inner
  const projections = ['to_q', 'to_k', 'to_v'].map((name) => pointwise(ctx, `${key}.${name}`, f, inner, false).x)
  const qkv: Feature = { ...f, x: g.op('Concat', projections, { axis: int(1) }), channels: qkvChannels }
  const scales = [qkv.x]
  kernelSizes.forEach((kernel, s) => {
    const scaleKey = `${key}.to_qkv_multiscale.${s}`
    const aggregated = conv(ctx, `${scaleKey}.proj_in`, qkv, {
      out: qkvChannels,
      kernel,
      bias: false,
      groups: qkvChannels,
    })
    scales.push(
      conv(ctx, `${scaleKey}.proj_out`, aggregated, {
        out: qkvChannels,
        kernel: 1,
        bias: false,
        groups: qkvChannels / headDim,
      }).x,
    )
  })
  const allChannels = qkvChannels * scales.length
  const heads = allChannels / (3 * headDim)
  const pixels = f.side * f.side
  // [B, heads, 3·d, H·W]; `0` keeps the batch dimension.
  const grouped = g.op('Reshape', [
    scales.length === 1 ? qkv.x : g.op('Concat', scales, { axis: int(1) }),
    g.ints([0, heads, 3 * headDim, pixels]),
  ])
  const third = (n: number) => g.op('Slice', [grouped, g.ints([n * headDim]), g.ints([(n + 1) * headDim]), g.ints([2])])
  const q = g.op('Relu', [third(0)])
  const k = g.op('Relu', [third(1)])
  const v = third(2)
  // diffusers picks the linear form when H·W > head_dim, else the quadratic one (the same function summed in
  // another order); the side is fixed at build time, so the choice is too.
  const attended = pixels > headDim ? linearAttention(g, q, k, v, headDim) : quadraticAttention(g, q, k, v)
  const merged: Feature = {
    ...f,
    x: g.op('Reshape', [attended, g.ints([0, heads * headDim, f.side, f.side])]),
    channels: heads * headDim,
  }
  const out = pointwise(ctx, `${key}.to_out`, merged, f.channels, false)
  return { ...f, x: g.op('Add', [channelRmsNorm(ctx, `${key}.norm_out`, out), f.x]) }
}

/**
 * (v kᵀ) q / (Σₙ kₙ · q + eps) per head, q, k, v [B, heads, d, N]: v gets a
 * row of ones (as diffusers pads it), whose output row is the normaliser.
 */
function linearAttention(g: GraphBuilder, q: string, k: string, v: string, headDim: number): string {
  const padded = g.op('Pad', [v, g.ints([0, 0, 0, 0, 0, 0, 1, 0]), g.scalar(1)], { mode: str('constant') })
  const scores = g.op('MatMul', [padded, g.op('Transpose', [k], { perm: ints([0, 1, 3, 2]) })])
  const out = g.op('MatMul', [scores, q])
  const numerator = g.op('Slice', [out, g.ints([0]), g.ints([headDim]), g.ints([2])])
  const normaliser = g.op('Slice', [out, g.ints([headDim]), g.ints([headDim + 1]), g.ints([2])])
  return g.op('Div', [numerator, g.op('Add', [normaliser, g.scalar(ATTENTION_EPS)])])
}

/** diffusers' quadratic form for small maps: v · (kᵀq / (Σ over keys + eps)), [B, heads, N, N] scores. */
function quadraticAttention(g: GraphBuilder, q: string, k: string, v: string): string {
  const scores = g.op('MatMul', [g.op('Transpose', [k], { perm: ints([0, 1, 3, 2]) }), q])
  const total = g.op('ReduceSum', [scores, g.ints([2])], { keepdims: int(1) })
  return g.op('MatMul', [v, g.op('Div', [scores, g.op('Add', [total, g.scalar(ATTENTION_EPS)])])])
}

/** GLUMBConv with RMSNorm: x + RMSNorm(point(h · SiLU(gate))), [h | gate] = depthwise 3×3(SiLU(inverted 1×1 x)). */
function gluMbConv(ctx: Ctx, key: string, f: Feature): Feature {
  const { g } = ctx
  const hidden = GLU_EXPAND * f.channels
  const inverted = conv(ctx, `${key}.conv_inverted`, f, { out: 2 * hidden, kernel: 1, bias: true })
  const depth = conv(
    ctx,
    `${key}.conv_depth`,
    { ...inverted, x: silu(g, inverted.x) },
    { out: 2 * hidden, kernel: 3, bias: true, groups: 2 * hidden },
  )
  const half = (n: number) => g.op('Slice', [depth.x, g.ints([n * hidden]), g.ints([(n + 1) * hidden]), g.ints([1])])
  const gated: Feature = { ...f, x: g.op('Mul', [half(0), silu(g, half(1))]), channels: hidden }
  const out = conv(ctx, `${key}.conv_point`, gated, { out: f.channels, kernel: 1, bias: false })
  return { ...f, x: g.op('Add', [channelRmsNorm(ctx, `${key}.norm`, out), f.x]) }
}

/** A Conv2d `key` (stride 1, padding k // 2), its weight stored [out, in / groups, k, k] as ONNX wants it. */
function conv(
  ctx: Ctx,
  key: string,
  f: Feature,
  opts: { out: number; kernel: number; bias: boolean; groups?: number },
): Feature {
  const { g, w } = ctx
  const groups = opts.groups ?? 1
  const { kernel: k, out } = opts
  const weightShape = [out, f.channels / groups, k, k]
  const inputs = [f.x, g.weight(`${key}.weight`, weightShape, w.tensor(`${key}.weight`, weightShape))]
  if (opts.bias) inputs.push(g.weight(`${key}.bias`, [out], w.bias(`${key}.bias`, out)))
  const pad = Math.floor(k / 2)
  const x = g.op('Conv', inputs, {
    kernel_shape: ints([k, k]),
    pads: ints([pad, pad, pad, pad]),
    strides: ints([1, 1]),
    group: int(groups),
  })
  return { x, channels: out, side: f.side }
}

/** A Linear `key` (stored [out, in]) over the channels of a feature map: a 1×1 convolution. */
function pointwise(ctx: Ctx, key: string, f: Feature, out: number, bias: boolean): Feature {
  const { g, w } = ctx
  const shape = [out, f.channels, 1, 1]
  const inputs = [f.x, g.weight(`${key}.weight`, shape, reshaped(w.tensor(`${key}.weight`, [out, f.channels]), shape))]
  if (bias) inputs.push(g.weight(`${key}.bias`, [out], w.bias(`${key}.bias`, out)))
  return { x: g.op('Conv', inputs, { kernel_shape: ints([1, 1]) }), channels: out, side: f.side }
}

/** diffusers' RMSNorm (weight and bias, eps 1e-5) over the channel axis: x / √(mean_c x² + eps) · w + b. */
function channelRmsNorm(ctx: Ctx, key: string, f: Feature): string {
  const { g, w } = ctx
  const c = f.channels
  const scale = g.weight(`${key}.weight`, [c, 1, 1], reshaped(w.scale(`${key}.weight`, c), [c, 1, 1]))
  const bias = g.weight(`${key}.bias`, [c, 1, 1], reshaped(w.bias(`${key}.bias`, c), [c, 1, 1]))
  const meanSquare = g.op('ReduceMean', [g.op('Pow', [f.x, g.scalar(2)])], { axes: ints([1]), keepdims: int(1) })
  const normed = g.op('Div', [f.x, g.op('Sqrt', [g.op('Add', [meanSquare, g.scalar(NORM_EPS)])])])
  return g.op('Add', [g.op('Mul', [normed, scale]), bias])
}

/** Each channel repeated `repeats` times in place (torch's repeat_interleave on dim 1): c → c·r … c·r + r − 1. */
function repeatChannels(g: GraphBuilder, f: Feature, repeats: number): Feature {
  if (!Number.isInteger(repeats) || repeats < 1)
    throw new Error(`cannot repeat ${f.channels} channels ${repeats} times`)
  if (repeats === 1) return f
  const expanded = g.op('Expand', [g.op('Unsqueeze', [f.x, g.ints([2])]), g.ints([1, 1, repeats, 1, 1])])
  const channels = f.channels * repeats
  return { x: g.op('Reshape', [expanded, g.ints([0, channels, f.side, f.side])]), channels, side: f.side }
}

/** torch's pixel_shuffle(·, 2): DepthToSpace in CRD mode. */
function depthToSpace(g: GraphBuilder, f: Feature): Feature {
  return {
    x: g.op('DepthToSpace', [f.x], { blocksize: int(2), mode: str('CRD') }),
    channels: f.channels / 4,
    side: f.side * 2,
  }
}

function activation(g: GraphBuilder, act: DcAeActivation, x: string): string {
  switch (act) {
    case 'silu':
      return silu(g, x)
    case 'relu':
      return g.op('Relu', [x])
    case 'gelu':
      return gelu(g, x)
    case 'mish':
      // x · tanh(softplus(x)) (torch's Mish).
      return g.op('Mul', [x, g.op('Tanh', [g.op('Softplus', [x])])])
  }
}
