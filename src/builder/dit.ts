/**
 * dit.onnx: the flow-matching image decoder, a SANA-style diffusion transformer at tiny size.
 *
 *   latents [B,C,h,w] ──► p×p patchify ──► linear + position table ─────────────► x [B,T,D]
 *   timestep [B] (σ) ──► sinusoidal(1000·σ) ──► linear, SiLU, linear ───────────► t [B,D]
 *   condition [B,L,H] ──► RMSNorm ──► linear, GELU, linear ─────────────────────► c [B,L,D]
 *   condition_mask [B,L] ──► additive bias [B,1,1,L]
 *
 *   x ──► N × ( x += gate₁·SelfAttn(modulate(LN x, t))
 *               x += CrossAttn(LN x, c, mask)
 *               x += gate₂·MLP(modulate(LN x, t)) )
 *     ──► modulate(LN x, t) ──► linear ──► unpatchify ──► velocity [B,C,h,w]
 *
 * modulate(y, t) = y·(1 + scale) + shift, with shift, scale and gate projected from t (adaLN).
 */
import type { ImageGenerationKelixConfig } from '../engine/model-config.js'
import { int, ints, type BuiltGraph } from './graph.js'
import { attend, gelu, geluMlp, layerNorm, linear, MASKED, rmsNorm, silu, type Ctx as LayerCtx } from './layers.js'
import type { SeededWeights } from './weights.js'

type Ctx = LayerCtx<SeededWeights>

export const DIT_OPSET = 17

/** Width of the sinusoidal timestep embedding before its MLP. */
const FREQUENCY_DIM = 128

interface DitShape {
  width: number
  heads: number
  patch: number
  /** Latent positions per side, divided by the patch. */
  side: number
  channels: number
}

export function buildDit(ctx: Ctx, config: ImageGenerationKelixConfig): BuiltGraph {
  const { g } = ctx
  const ig = config.image_generation
  const { hidden_size: width, num_heads: heads, patch_size: patch, num_layers: layers, intermediate_size: inner } = ig.dit
  if (ig.latent_size % patch !== 0) throw new Error(`latent_size ${ig.latent_size} is not a multiple of dit.patch_size ${patch}`)
  if (width % heads !== 0) throw new Error(`dit.hidden_size ${width} is not a multiple of dit.num_heads ${heads}`)
  const shape: DitShape = { width, heads, patch, side: ig.latent_size / patch, channels: ig.latent_channels }
  const latentDims = ['batch', ig.latent_channels, ig.latent_size, ig.latent_size]
  const latents = g.input('latents', 'float32', latentDims)
  const timestep = g.input('timestep', 'float32', ['batch'])
  const condition = g.input('condition', 'float32', ['batch', ig.condition_length, config.llm.hidden_size])
  const conditionMask = g.input('condition_mask', 'int64', ['batch', ig.condition_length])

  let x = patchEmbedding(ctx, latents, shape)
  const t = timestepEmbedding(ctx, timestep, width)
  const c = conditionProjection(ctx, condition, config.llm.hidden_size, width, config.llm.rms_norm_eps)
  const bias = g.op('Unsqueeze', [g.op('Where', [g.op('Cast', [conditionMask], { to: int(9) }), g.scalar(0), g.scalar(MASKED)]), g.ints([1, 2])])
  for (let i = 0; i < layers; i++) x = ditBlock(ctx, `dit.transformer_blocks.${i}`, { x, t, c, bias }, shape, inner)

  const [shift, scale] = adaptiveParameters(ctx, 'dit.final_layer.adaLN_modulation', t, width, 2) as [string, string]
  const out = linear(ctx, 'dit.final_layer.linear', modulate(ctx, plainNorm(ctx, x, width), shift, scale), width, patch * patch * shape.channels, { bias: true })
  g.output('velocity', 'float32', latentDims, unpatchify(ctx, out, shape))
  return g.finish(DIT_OPSET, 'Kelix image decoder: flow-matching DiT velocity conditioned on the LLM hidden states')
}

/** [B,C,h,w] → [B,T,C·p·p] tokens (row-major over the patch grid) → linear + learned positions. */
function patchEmbedding(ctx: Ctx, latents: string, s: DitShape): string {
  const { g } = ctx
  const grid = g.op('Reshape', [latents, g.ints([0, s.channels, s.side, s.patch, s.side, s.patch])])
  const tokens = g.op('Reshape', [g.op('Transpose', [grid], { perm: ints([0, 2, 4, 1, 3, 5]) }), g.ints([0, s.side * s.side, s.channels * s.patch * s.patch])])
  const count = s.side * s.side
  const positions = g.weight('dit.pos_embed', [count, s.width], ctx.w.random('dit.pos_embed', count * s.width, 0.5))
  return g.op('Add', [linear(ctx, 'dit.patch_embed.proj', tokens, s.channels * s.patch * s.patch, s.width, { bias: true }), positions])
}

/** [B,T,C·p·p] → [B,C,h,w], the inverse of the patchify above. */
function unpatchify(ctx: Ctx, tokens: string, s: DitShape): string {
  const { g } = ctx
  const grid = g.op('Reshape', [tokens, g.ints([0, s.side, s.side, s.channels, s.patch, s.patch])])
  const side = s.side * s.patch
  return g.op('Reshape', [g.op('Transpose', [grid], { perm: ints([0, 3, 1, 4, 2, 5]) }), g.ints([0, s.channels, side, side])])
}

/** [B] σ → [B,D]: cos/sin of 1000·σ at geometric frequencies, then an MLP. */
function timestepEmbedding(ctx: Ctx, timestep: string, width: number): string {
  const { g } = ctx
  const half = FREQUENCY_DIM / 2
  const frequencies = Float32Array.from({ length: half }, (_, i) => Math.exp((-Math.log(10_000) * i) / half))
  const angles = g.op('Mul', [
    g.op('Unsqueeze', [g.op('Mul', [timestep, g.scalar(1000)]), g.ints([-1])]),
    g.weight('dit.t_embedder.frequencies', [half], frequencies),
  ])
  const embedded = g.op('Concat', [g.op('Cos', [angles]), g.op('Sin', [angles])], { axis: int(-1) })
  const hidden = silu(g, linear(ctx, 'dit.t_embedder.linear_1', embedded, FREQUENCY_DIM, width, { bias: true }))
  return linear(ctx, 'dit.t_embedder.linear_2', hidden, width, width, { bias: true })
}

/** The LLM's hidden states (before its final norm) → RMSNorm → two-layer GELU MLP to the DiT width. */
function conditionProjection(ctx: Ctx, condition: string, hidden: number, width: number, eps: number): string {
  const normed = rmsNorm(ctx, 'dit.condition_norm.weight', condition, hidden, eps)
  const projected = gelu(ctx.g, linear(ctx, 'dit.caption_projection.linear_1', normed, hidden, width, { bias: true }))
  return linear(ctx, 'dit.caption_projection.linear_2', projected, width, width, { bias: true })
}

interface BlockInputs {
  x: string
  t: string
  c: string
  bias: string
}

function ditBlock(ctx: Ctx, prefix: string, inputs: BlockInputs, s: DitShape, inner: number): string {
  const { g } = ctx
  const { t, c, bias } = inputs
  const [shift1, scale1, gate1, shift2, scale2, gate2] = adaptiveParameters(ctx, `${prefix}.adaLN_modulation`, t, s.width, 6) as [string, string, string, string, string, string]
  let x = inputs.x
  const a = modulate(ctx, plainNorm(ctx, x, s.width), shift1, scale1)
  x = g.op('Add', [x, g.op('Mul', [gate1, attention(ctx, `${prefix}.attn1`, a, a, s)])])
  const q = layerNorm(ctx, `${prefix}.norm2`, x, s.width, 1e-6)
  x = g.op('Add', [x, attention(ctx, `${prefix}.attn2`, q, c, s, bias)])
  const m = modulate(ctx, plainNorm(ctx, x, s.width), shift2, scale2)
  return g.op('Add', [x, g.op('Mul', [gate2, geluMlp(ctx, `${prefix}.ff`, m, s.width, inner)])])
}

/** Multi-head attention of `queries` [B,T,D] over `keys` [B,S,D]; `bias` [B,1,1,S] masks keys. */
function attention(ctx: Ctx, prefix: string, queries: string, keys: string, s: DitShape, bias?: string): string {
  const { g } = ctx
  const headDim = s.width / s.heads
  const split = (name: string, from: string) =>
    g.op('Transpose', [g.op('Reshape', [linear(ctx, `${prefix}.${name}`, from, s.width, s.width, { bias: true }), g.ints([0, 0, s.heads, headDim])])], { perm: ints([0, 2, 1, 3]) })
  const context = attend(g, split('to_q', queries), split('to_k', keys), split('to_v', keys), { rank: 4, headDim }, bias)
  const merged = g.op('Reshape', [g.op('Transpose', [context], { perm: ints([0, 2, 1, 3]) }), g.ints([0, 0, s.width])])
  return linear(ctx, `${prefix}.to_out`, merged, s.width, s.width, { bias: true })
}

/** `count` vectors [B,1,D] projected from SiLU(t): shifts, scales and gates of adaLN. */
function adaptiveParameters(ctx: Ctx, name: string, t: string, width: number, count: number): string[] {
  const { g } = ctx
  const projected = linear(ctx, name, silu(g, t), width, count * width, { bias: true, gain: 0.5 })
  return g.opN('Split', [g.op('Unsqueeze', [projected, g.ints([1])])], count, { axis: int(-1) })
}

function modulate(ctx: Ctx, x: string, shift: string, scale: string): string {
  const { g } = ctx
  return g.op('Add', [g.op('Mul', [x, g.op('Add', [scale, g.scalar(1)])]), shift])
}

/** LayerNorm without learned scale and bias (adaLN supplies them). */
function plainNorm(ctx: Ctx, x: string, width: number): string {
  const { g } = ctx
  return g.op('LayerNormalization', [x, g.scalar(1, [width]), g.scalar(0, [width])], { axis: int(-1), epsilon: { kind: 'float', value: 1e-6 } })
}
