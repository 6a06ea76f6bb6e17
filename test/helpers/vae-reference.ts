/**
 * The VAE part of the reference set (../shared/kelix-reference/vae): diffusers'
 * AutoencoderDC checkpoint and its decoded images; and a plain-loop float64
 * DC-AE decoder written from diffusers' modules, which checks the graph on the
 * configurations the reference set does not cover (pixel shuffle, quadratic
 * attention, several aggregation scales, no input shortcut, …).
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Nested } from './tensors.js'
import type { DcAeActivation, DcAeConfig, DcAeStage } from '../../src/convert/dc-ae-config.js'

export const VAE_REFERENCE_DIR = fileURLToPath(new URL('../../../shared/kelix-reference/vae/', import.meta.url))
export const VAE_REFERENCE_CHECKPOINT = `${VAE_REFERENCE_DIR}checkpoint`

export interface VaeReferenceCase {
  name: string
  /** [1, C, s, s], the DiT's space. */
  latents: Nested
  /** latents / scaling_factor in float32: what diffusers' decoder received. */
  decoder_input: Nested
  /** [1, 3, S, S], raw. */
  image: Nested
  /** [S, S, 3]. */
  image_uint8_hwc: Nested
}

export interface VaeReference {
  scaling_factor: number
  latent_shape: number[]
  image_shape: number[]
  cases: VaeReferenceCase[]
}

export function readVaeReference(): VaeReference {
  return JSON.parse(readFileSync(`${VAE_REFERENCE_DIR}reference.json`, 'utf8')) as VaeReference
}

/** [C, H, W] values of one image (batch 1). */
interface Map3 {
  data: Float64Array
  c: number
  side: number
}

type Tensors = (key: string) => Float32Array

const NORM_EPS = 1e-5
const ATTENTION_EPS = 1e-15

/**
 * diffusers' `Decoder.forward(latents / scaling_factor)` for one image, in
 * float64 with plain loops (small sizes only). `tensor(key)` gives a
 * checkpoint tensor's values.
 */
export function naiveDcAeDecode(
  config: DcAeConfig,
  tensor: Tensors,
  latents: Float32Array,
  latentSize: number,
): Float64Array {
  const z: Map3 = {
    data: Float64Array.from(latents, (v) => Math.fround(v / Math.fround(config.scalingFactor))),
    c: config.latentChannels,
    side: latentSize,
  }
  const stages = config.stages
  const last = stages.length - 1
  let x = conv(z, tensor, 'decoder.conv_in', (stages[last] as DcAeStage).channels, 3, 1, true)
  if (config.inShortcut) x = add(x, repeatInterleave(z, x.c / z.c))
  for (let i = last; i >= 0; i--) {
    const stage = stages[i] as DcAeStage
    let index = 0
    if (i < last && stage.layers > 0)
      x = upBlock(
        x,
        tensor,
        `decoder.up_blocks.${i}.${index++}`,
        stage.channels,
        config.upsampleBlockType === 'interpolate',
        true,
      )
    for (let l = 0; l < stage.layers; l++) {
      const key = `decoder.up_blocks.${i}.${index++}`
      x =
        stage.blockType === 'ResBlock'
          ? resBlock(x, tensor, key, stage.actFn)
          : efficientVit(x, tensor, key, stage.qkvMultiscales, config.attentionHeadDim)
    }
  }
  x = map(rmsNorm(x, tensor, 'decoder.norm_out'), (v) => act(config.convActFn, v))
  const interpolate = config.upsampleBlockType === 'interpolate'
  x =
    (stages[0] as DcAeStage).layers > 0
      ? conv(x, tensor, 'decoder.conv_out', 3, 3, 1, true)
      : upBlock(x, tensor, 'decoder.conv_out', 3, interpolate, false)
  return x.data
}

function resBlock(x: Map3, tensor: Tensors, key: string, actFn: DcAeActivation): Map3 {
  const h = map(conv(x, tensor, `${key}.conv1`, x.c, 3, 1, true), (v) => act(actFn, v))
  return add(rmsNorm(conv(h, tensor, `${key}.conv2`, x.c, 3, 1, false), tensor, `${key}.norm`), x)
}

function upBlock(x: Map3, tensor: Tensors, key: string, out: number, interpolate: boolean, shortcut: boolean): Map3 {
  const y = interpolate
    ? conv(nearest2x(x), tensor, `${key}.conv`, out, 3, 1, true)
    : pixelShuffle(conv(x, tensor, `${key}.conv`, out * 4, 3, 1, true))
  return shortcut ? add(y, pixelShuffle(repeatInterleave(x, (out * 4) / x.c))) : y
}

function efficientVit(x: Map3, tensor: Tensors, key: string, kernels: readonly number[], d: number): Map3 {
  const inner = Math.floor(x.c / d) * d
  const qkv = concat(['to_q', 'to_k', 'to_v'].map((n) => linear(x, tensor(`${key}.attn.${n}.weight`), inner)))
  const scales = [
    qkv,
    ...kernels.map((k, s) =>
      conv(
        conv(qkv, tensor, `${key}.attn.to_qkv_multiscale.${s}.proj_in`, qkv.c, k, qkv.c, false),
        tensor,
        `${key}.attn.to_qkv_multiscale.${s}.proj_out`,
        qkv.c,
        1,
        qkv.c / d,
        false,
      ),
    ),
  ]
  const all = concat(scales)
  const n = x.side * x.side
  const heads = all.c / (3 * d)
  const out = new Float64Array(heads * d * n)
  const at = (h: number, part: number, i: number, p: number) => all.data[(h * 3 * d + part * d + i) * n + p] as number
  for (let h = 0; h < heads; h++) {
    const q = (i: number, p: number) => Math.max(0, at(h, 0, i, p))
    const k = (i: number, p: number) => Math.max(0, at(h, 1, i, p))
    const v = (i: number, p: number) => at(h, 2, i, p)
    // Σ_m v_m (k_m · q_p) / (Σ_m k_m · q_p + eps): diffusers' linear form, and its quadratic form
    // (used when H·W ≤ head_dim) is the same function summed in another order.
    for (let p = 0; p < n; p++) {
      let den = 0
      const num = new Float64Array(d)
      for (let m = 0; m < n; m++) {
        let kq = 0
        for (let j = 0; j < d; j++) kq += k(j, m) * q(j, p)
        den += kq
        for (let i = 0; i < d; i++) num[i] = (num[i] as number) + v(i, m) * kq
      }
      for (let i = 0; i < d; i++) out[(h * d + i) * n + p] = (num[i] as number) / (den + ATTENTION_EPS)
    }
  }
  const attended = linear({ data: out, c: heads * d, side: x.side }, tensor(`${key}.attn.to_out.weight`), x.c)
  const y = add(rmsNorm(attended, tensor, `${key}.attn.norm_out`), x)
  const hidden = 4 * y.c
  const inverted = map(conv(y, tensor, `${key}.conv_out.conv_inverted`, 2 * hidden, 1, 1, true), silu)
  const depth = conv(inverted, tensor, `${key}.conv_out.conv_depth`, 2 * hidden, 3, 2 * hidden, true)
  const half = hidden * n
  const gated: Map3 = {
    data: depth.data.slice(0, half).map((v, i) => v * silu(depth.data[half + i] as number)),
    c: hidden,
    side: x.side,
  }
  return add(
    rmsNorm(conv(gated, tensor, `${key}.conv_out.conv_point`, y.c, 1, 1, false), tensor, `${key}.conv_out.norm`),
    y,
  )
}

function conv(x: Map3, tensor: Tensors, key: string, out: number, k: number, groups: number, bias: boolean): Map3 {
  const w = tensor(`${key}.weight`)
  const b = bias ? tensor(`${key}.bias`) : undefined
  const { side: s, c } = x
  const inPer = c / groups
  const outPer = out / groups
  const pad = Math.floor(k / 2)
  const y = new Float64Array(out * s * s)
  for (let o = 0; o < out; o++) {
    const g = Math.floor(o / outPer)
    for (let r = 0; r < s; r++) {
      for (let col = 0; col < s; col++) {
        let sum = b === undefined ? 0 : (b[o] as number)
        for (let ci = 0; ci < inPer; ci++) {
          const channel = g * inPer + ci
          for (let dr = 0; dr < k; dr++) {
            const rr = r + dr - pad
            if (rr < 0 || rr >= s) continue
            for (let dc = 0; dc < k; dc++) {
              const cc = col + dc - pad
              if (cc < 0 || cc >= s) continue
              sum +=
                (w[((o * inPer + ci) * k + dr) * k + dc] as number) * (x.data[(channel * s + rr) * s + cc] as number)
            }
          }
        }
        y[(o * s + r) * s + col] = sum
      }
    }
  }
  return { data: y, c: out, side: s }
}

/** A Linear stored [out, in] applied at every pixel. */
function linear(x: Map3, w: Float32Array, out: number): Map3 {
  const n = x.side * x.side
  const y = new Float64Array(out * n)
  for (let o = 0; o < out; o++) {
    for (let p = 0; p < n; p++) {
      let sum = 0
      for (let i = 0; i < x.c; i++) sum += (w[o * x.c + i] as number) * (x.data[i * n + p] as number)
      y[o * n + p] = sum
    }
  }
  return { data: y, c: out, side: x.side }
}

function rmsNorm(x: Map3, tensor: Tensors, key: string): Map3 {
  const w = tensor(`${key}.weight`)
  const b = tensor(`${key}.bias`)
  const n = x.side * x.side
  const y = new Float64Array(x.data.length)
  for (let p = 0; p < n; p++) {
    let meanSquare = 0
    for (let c = 0; c < x.c; c++) meanSquare += (x.data[c * n + p] as number) ** 2 / x.c
    const inv = 1 / Math.sqrt(meanSquare + NORM_EPS)
    for (let c = 0; c < x.c; c++)
      y[c * n + p] = (x.data[c * n + p] as number) * inv * (w[c] as number) + (b[c] as number)
  }
  return { ...x, data: y }
}

function repeatInterleave(x: Map3, r: number): Map3 {
  const n = x.side * x.side
  const y = new Float64Array(x.c * r * n)
  for (let c = 0; c < x.c * r; c++) y.set(x.data.subarray(Math.floor(c / r) * n, (Math.floor(c / r) + 1) * n), c * n)
  return { data: y, c: x.c * r, side: x.side }
}

/** torch's pixel_shuffle(·, 2): out[c, 2h + i, 2w + j] = in[4c + 2i + j, h, w]. */
function pixelShuffle(x: Map3): Map3 {
  const s = x.side
  const c = x.c / 4
  const y = new Float64Array(x.data.length)
  for (let ch = 0; ch < c; ch++) {
    for (let h = 0; h < 2 * s; h++) {
      for (let w = 0; w < 2 * s; w++)
        y[(ch * 2 * s + h) * 2 * s + w] = x.data[
          ((4 * ch + 2 * (h % 2) + (w % 2)) * s + (h >> 1)) * s + (w >> 1)
        ] as number
    }
  }
  return { data: y, c, side: 2 * s }
}

function nearest2x(x: Map3): Map3 {
  const s = x.side
  const y = new Float64Array(x.data.length * 4)
  for (let ch = 0; ch < x.c; ch++) {
    for (let h = 0; h < 2 * s; h++) {
      for (let w = 0; w < 2 * s; w++)
        y[(ch * 2 * s + h) * 2 * s + w] = x.data[(ch * s + (h >> 1)) * s + (w >> 1)] as number
    }
  }
  return { data: y, c: x.c, side: 2 * s }
}

function concat(parts: Map3[]): Map3 {
  const data = new Float64Array(parts.reduce((sum, p) => sum + p.data.length, 0))
  let at = 0
  for (const p of parts) {
    data.set(p.data, at)
    at += p.data.length
  }
  return { data, c: parts.reduce((sum, p) => sum + p.c, 0), side: (parts[0] as Map3).side }
}

function add(a: Map3, b: Map3): Map3 {
  if (a.data.length !== b.data.length) throw new Error(`adding [${a.c}, ${a.side}²] and [${b.c}, ${b.side}²]`)
  return { ...a, data: a.data.map((v, i) => v + (b.data[i] as number)) }
}

function map(x: Map3, f: (v: number) => number): Map3 {
  return { ...x, data: x.data.map(f) }
}

function silu(v: number): number {
  return v / (1 + Math.exp(-v))
}

function act(name: DcAeActivation, v: number): number {
  switch (name) {
    case 'silu':
      return silu(v)
    case 'relu':
      return Math.max(0, v)
    case 'gelu':
      throw new Error('the plain-loop decoder has no GELU (the graph takes it from layers.ts)')
    case 'mish':
      return v * Math.tanh(Math.log1p(Math.exp(v)))
  }
}
