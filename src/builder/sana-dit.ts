/**
 * dit.onnx: Kelix-DiT, a SANA diffusion transformer (`SanaModel`), from a
 * checkpoint in the published layout. It predicts the flow-matching velocity.
 *
 *   latents [B,C,S,S] ──► Conv p×p stride p (x_embedder) ──► tokens (+ sin-cos table if use_pe) ──► x [B,T,D]
 *   timestep [B] (σ) ──► t = ⌊1000·σ⌋ ──► [cos, sin](t·f) ──► t_embedder.mlp ──► t [B,D]
 *                                                   t ──► SiLU, t_block ──► t6 [B,6,D]
 *   condition [B,L,H] ──► diffusion_connector (linear, GELU-tanh, linear, RMSNorm) ──┐
 *   null caption y_embedder.y_embedding [L,Cc] ─── rows where `unconditional` ─────────┴► Where ──► y_proj
 *       ──► attention_y_norm (RMSNorm) ──► y [B,L,D]
 *   condition_mask [B,L] (ones where `unconditional`) ──► (1 − m)·(−10000) ──► bias [B,1,1,L]
 *
 *   x ──► depth × ( shift₁,scale₁,gate₁,shift₂,scale₂,gate₂ = scale_shift_table + t6
 *                   x += gate₁ · LinearAttn(modulate(LN x, shift₁, scale₁))
 *                   x += CrossAttn(x, y, bias)                           (no norm, no gate)
 *                   x += gate₂ · GLUMBConv(modulate(LN x, shift₂, scale₂)) )
 *     ──► shift,scale = final_layer.scale_shift_table + t ──► modulate(LN x) ──► final_layer.linear
 *     ──► unpatchify (first C channels when pred_sigma) ──► velocity [B,C,S,S]
 *
 * modulate(y, shift, scale) = y·(1 + scale) + shift; LN is LayerNorm without
 * affine, eps 1e-6. LinearAttn is SANA's LiteLA: ReLU(q)·(ReLU(k)ᵀv) divided
 * by ReLU(q)·ΣReLU(k) + 1e-8, per head of `linear_head_dim`. GLUMBConv: 1×1
 * conv to 2F + SiLU, depthwise 3×3, halves x and gate, x·SiLU(gate), 1×1 conv.
 * Every weight is named by its checkpoint key.
 */
import type { SanaDitConfig } from '../convert/sana-config.js'
import { float, int, ints, type BuiltGraph, type GraphBuilder } from './graph.js'
import { attend, geluTanh, linear, rmsNorm, silu, type Ctx as LayerCtx } from './layers.js'
import type { CheckpointWeights } from './weights.js'

type Ctx = LayerCtx<CheckpointWeights>

export const SANA_DIT_OPSET = 17

/** What the graph is built from: the parsed config and the condition length (rows of the null caption). */
export interface SanaDitSpec {
  config: SanaDitConfig
  conditionLength: number
}

/** Width of the sinusoidal timestep features (TimestepEmbedder's frequency_embedding_size). */
const FREQUENCY_DIM = 256
/** The timestep the DiT sees is σ times this, truncated (`timestep.long()`). */
const TIMESTEP_SCALE = 1000
/** LayerNorm eps of norm1, norm2 and final_layer.norm_final. */
const LAYER_NORM_EPS = 1e-6
/** LiteLA's eps (diffusers uses 1e-15; the reference 1e-8). */
const LINEAR_ATTENTION_EPS = 1e-8
/** The connector's RMSNorm eps, fixed in the reference (not `norm_eps`). */
const CONNECTOR_NORM_EPS = 1e-5
/** Added to the cross-attention scores of padding positions: (1 − m)·(−10000), as the reference. */
const PADDING_SCORE = -10000

/** Nodes shared by every block: LayerNorm's constant scale, the modulation vectors, the cross-attention bias. */
interface Shared {
  t: string
  t6: string
  y: string
  bias: string
  ones: string
}

export function buildSanaDit(ctx: Ctx, spec: SanaDitSpec): BuiltGraph {
  const { g } = ctx
  const { config: c, conditionLength: length } = spec
  checkSpec(spec)
  const latentDims = ['batch', c.inChannels, c.inputSize, c.inputSize]
  const latents = g.input('latents', 'float32', latentDims)
  const timestep = g.input('timestep', 'float32', ['batch'])
  const condition = g.input('condition', 'float32', ['batch', length, c.connectorChannels ?? c.captionChannels])
  const conditionMask = g.input('condition_mask', 'int64', ['batch', length])
  const unconditional = g.input('unconditional', 'bool', ['batch'])

  let x = patchEmbedding(ctx, latents, c)
  const t = timestepEmbedding(ctx, timestep, c.hidden)
  const t6 = g.op('Reshape', [
    linear(ctx, 't_block.1', silu(g, t), c.hidden, 6 * c.hidden, { bias: true }),
    g.ints([0, 6, c.hidden]),
  ])
  const y = captionEmbedding(ctx, spec, condition, unconditional)
  const bias = crossAttentionBias(g, conditionMask, unconditional)
  const shared: Shared = { t, t6, y, bias, ones: g.scalar(1, [c.hidden]) }

  for (let i = 0; i < c.depth; i++) x = sanaBlock(ctx, `blocks.${i}`, x, shared, c)
  g.output('velocity', 'float32', latentDims, finalLayer(ctx, x, shared, c))
  return g.finish(SANA_DIT_OPSET, 'Kelix-DiT (SANA): flow-matching velocity conditioned on the LLM hidden states')
}

/**
 * A graph of the condition path's first part alone, `diffusion_connector`:
 * `condition` [B,L,H] → `connected` [B,L,caption_channels], built by the same
 * function as dit.onnx's (to check it against the reference's connector output).
 */
export function buildSanaConnector(ctx: Ctx, spec: SanaDitSpec): BuiltGraph {
  const { g } = ctx
  const { config: c, conditionLength: length } = spec
  checkSpec(spec)
  if (c.connectorChannels === null) throw new Error('this DiT has no diffusion_connector (use_connector is false)')
  const condition = g.input('condition', 'float32', ['batch', length, c.connectorChannels])
  g.output(
    'connected',
    'float32',
    ['batch', length, c.captionChannels],
    diffusionConnector(ctx, condition, c.connectorChannels, c.captionChannels),
  )
  return g.finish(SANA_DIT_OPSET, 'Kelix-DiT diffusion_connector (a test graph)')
}

function checkSpec({ config: c, conditionLength }: SanaDitSpec): void {
  if (!Number.isInteger(conditionLength) || conditionLength < 1)
    throw new Error(`condition length ${conditionLength} is not a positive integer`)
  if (c.inputSize % c.patchSize !== 0)
    throw new Error(`input_size ${c.inputSize} is not a multiple of patch_size ${c.patchSize}`)
}

/** [B,C,S,S] → [B,T,D]: the patch Conv (x_embedder.proj), tokens row-major over the patch grid, plus the position table when use_pe. */
function patchEmbedding(ctx: Ctx, latents: string, c: SanaDitConfig): string {
  const { g, w } = ctx
  const p = c.patchSize
  const side = c.inputSize / p
  const weightKey = 'x_embedder.proj.weight'
  const weight = g.weight(
    weightKey,
    [c.hidden, c.inChannels, p, p],
    w.tensor(weightKey, [c.hidden, c.inChannels, p, p]),
  )
  const bias = g.weight('x_embedder.proj.bias', [c.hidden], w.bias('x_embedder.proj.bias', c.hidden))
  // PatchEmbedMS pads an odd kernel by p // 2 (0 for patch 1); the output side is still S / p.
  const pad = p % 2 === 1 ? (p - 1) / 2 : 0
  const grid = g.op('Conv', [latents, weight, bias], {
    kernel_shape: ints([p, p]),
    strides: ints([p, p]),
    pads: ints([pad, pad, pad, pad]),
  })
  const tokens = g.op('Transpose', [g.op('Reshape', [grid, g.ints([0, c.hidden, side * side])])], {
    perm: ints([0, 2, 1]),
  })
  if (c.positionEmbedding === null) return tokens
  // The reference recomputes this table at every call and never reads the stored `pos_embed`.
  const table = sinCosPositionTable(c.hidden, side, c.positionEmbedding.interpolation)
  return g.op('Add', [tokens, g.op('Reshape', [g.floats(Array.from(table)), g.ints([side * side, c.hidden])])])
}

/**
 * SANA's 2-D sin-cos table for a side × side grid whose base size is the side
 * itself: [T, D], each row [sin, cos of the column] then [sin, cos of the row],
 * positions i / pe_interpolation (float32, as numpy's), angles in float64.
 */
export function sinCosPositionTable(width: number, side: number, interpolation: number): Float32Array {
  const quarter = width / 4
  const omega = Float64Array.from({ length: quarter }, (_, k) => 1 / 10000 ** (k / quarter))
  const table = new Float32Array(side * side * width)
  for (let r = 0; r < side; r++) {
    for (let col = 0; col < side; col++) {
      const row = table.subarray((r * side + col) * width, (r * side + col + 1) * width)
      const axes = [Math.fround(col / interpolation), Math.fround(r / interpolation)]
      axes.forEach((pos, axis) => {
        for (let k = 0; k < quarter; k++) {
          row[axis * 2 * quarter + k] = Math.sin(pos * (omega[k] as number))
          row[axis * 2 * quarter + quarter + k] = Math.cos(pos * (omega[k] as number))
        }
      })
    }
  }
  return table
}

/**
 * [B] σ → [B,D]. t = ⌊float32(σ·1000)⌋ (σ ≥ 0, so Floor is the reference's
 * truncation toward zero); features [cos(t·f), sin(t·f)], then t_embedder.mlp.
 */
function timestepEmbedding(ctx: Ctx, sigma: string, hidden: number): string {
  const { g } = ctx
  const t = g.op('Floor', [g.op('Mul', [sigma, g.scalar(TIMESTEP_SCALE)])])
  const angles = g.op('Mul', [g.op('Unsqueeze', [t, g.ints([-1])]), g.floats(timestepFrequencies())])
  const features = g.op('Concat', [g.op('Cos', [angles]), g.op('Sin', [angles])], { axis: int(-1) })
  const hiddenT = silu(g, linear(ctx, 't_embedder.mlp.0', features, FREQUENCY_DIM, hidden, { bias: true }))
  return linear(ctx, 't_embedder.mlp.2', hiddenT, hidden, hidden, { bias: true })
}

/**
 * f_i = exp(−ln(10000)·i/128), rounded to float32 at each step as the
 * reference's float32 arange arithmetic does (the angles reach 1000 rad, so an
 * ulp of f moves them by as much as their own rounding).
 */
function timestepFrequencies(): number[] {
  const half = FREQUENCY_DIM / 2
  const logPeriod = Math.fround(-Math.log(10000))
  return Array.from({ length: half }, (_, i) => Math.fround(Math.exp(Math.fround(Math.fround(logPeriod * i) / half))))
}

/** diffusion_connector: Linear(H→Cc), GELU-tanh, Linear(Cc→Cc), RMSNorm (eps 1e-5). */
function diffusionConnector(ctx: Ctx, condition: string, inDim: number, captionDim: number): string {
  const hidden = geluTanh(ctx.g, linear(ctx, 'diffusion_connector.0', condition, inDim, captionDim, { bias: true }))
  const projected = linear(ctx, 'diffusion_connector.2', hidden, captionDim, captionDim, { bias: true })
  return rmsNorm(ctx, 'diffusion_connector.3.weight', projected, captionDim, CONNECTOR_NORM_EPS)
}

/**
 * The caption y [B,L,D]: the condition through the connector, or for an
 * `unconditional` row the null caption (already in caption space, so it skips
 * the connector), then y_proj (fc1, GELU-tanh, fc2) and attention_y_norm.
 */
function captionEmbedding(ctx: Ctx, spec: SanaDitSpec, condition: string, unconditional: string): string {
  const { g, w } = ctx
  const { config: c, conditionLength: length } = spec
  const caption =
    c.connectorChannels === null
      ? condition
      : diffusionConnector(ctx, condition, c.connectorChannels, c.captionChannels)
  const nullKey = 'y_embedder.y_embedding'
  const nullCaption = g.weight(nullKey, [length, c.captionChannels], w.tensor(nullKey, [length, c.captionChannels]))
  const chosen = g.op('Where', [g.op('Reshape', [unconditional, g.ints([-1, 1, 1])]), nullCaption, caption])
  const hidden = geluTanh(g, linear(ctx, 'y_embedder.y_proj.fc1', chosen, c.captionChannels, c.hidden, { bias: true }))
  const y = linear(ctx, 'y_embedder.y_proj.fc2', hidden, c.hidden, c.hidden, { bias: true })
  return c.yNorm === null ? y : rmsNorm(ctx, 'attention_y_norm.weight', y, c.hidden, c.yNorm.eps)
}

/** [B,L] 0/1 mask → [B,1,1,L] additive bias (1 − m)·(−10000); an unconditional row's mask is all ones. */
function crossAttentionBias(g: GraphBuilder, mask: string, unconditional: string): string {
  const real = g.op('Where', [
    g.op('Reshape', [unconditional, g.ints([-1, 1])]),
    g.scalar(1),
    g.op('Cast', [mask], { to: int(1) }),
  ])
  const bias = g.op('Mul', [g.op('Sub', [g.scalar(1), real]), g.scalar(PADDING_SCORE)])
  return g.op('Unsqueeze', [bias, g.ints([1, 2])])
}

function sanaBlock(ctx: Ctx, prefix: string, input: string, s: Shared, c: SanaDitConfig): string {
  const { g, w } = ctx
  const tableKey = `${prefix}.scale_shift_table`
  const table = g.weight(tableKey, [6, c.hidden], w.tensor(tableKey, [6, c.hidden]))
  // Each [B,1,D]: shift, scale, gate of the attention, then of the FFN.
  const [shift1, scale1, gate1, shift2, scale2, gate2] = g.opN('Split', [g.op('Add', [table, s.t6])], 6, {
    axis: int(1),
  }) as [string, string, string, string, string, string]
  let x = input
  const attn = linearAttention(ctx, `${prefix}.attn`, modulate(g, plainNorm(g, x, s.ones), shift1, scale1), c)
  x = g.op('Add', [x, g.op('Mul', [gate1, attn])])
  x = g.op('Add', [x, crossAttention(ctx, `${prefix}.cross_attn`, x, s, c)])
  const ffn = gluMbConv(ctx, `${prefix}.mlp`, modulate(g, plainNorm(g, x, s.ones), shift2, scale2), c)
  return g.op('Add', [x, g.op('Mul', [gate2, ffn])])
}

/**
 * LiteLA over [B,T,D] with heads of `linear_head_dim`: per head
 * out_n = Σ_i q_ni (kᵀv)_i / (Σ_i q_ni Σ_m k_mi + eps) with q, k after ReLU.
 * The reference pads v with a row of ones to get the denominator from the
 * same product; summing k first is the same sums.
 */
function linearAttention(ctx: Ctx, prefix: string, x: string, c: SanaDitConfig): string {
  const { g } = ctx
  const heads = c.hidden / c.linearHeadDim
  const project = (name: string) =>
    g.op('Reshape', [linear(ctx, `${prefix}.${name}`, x, c.hidden, c.hidden), g.ints([0, 0, heads, c.linearHeadDim])])
  const q = g.op('Transpose', [g.op('Relu', [project('to_q')])], { perm: ints([0, 2, 1, 3]) }) // [B,h,T,d]
  const kT = g.op('Transpose', [g.op('Relu', [project('to_k')])], { perm: ints([0, 2, 3, 1]) }) // [B,h,d,T]
  const v = g.op('Transpose', [project('to_v')], { perm: ints([0, 2, 1, 3]) }) // [B,h,T,d]
  const numerator = g.op('MatMul', [q, g.op('MatMul', [kT, v])])
  const denominator = g.op('MatMul', [q, g.op('ReduceSum', [kT, g.ints([-1])], { keepdims: int(1) })])
  const out = g.op('Div', [numerator, g.op('Add', [denominator, g.scalar(LINEAR_ATTENTION_EPS)])])
  const merged = g.op('Reshape', [g.op('Transpose', [out], { perm: ints([0, 2, 1, 3]) }), g.ints([0, 0, c.hidden])])
  return linear(ctx, `${prefix}.proj`, merged, c.hidden, c.hidden, { bias: true })
}

/** Softmax attention of x [B,T,D] over the caption y [B,L,D] with `num_heads` heads; padding masked by the additive bias. */
function crossAttention(ctx: Ctx, prefix: string, x: string, s: Shared, c: SanaDitConfig): string {
  const { g } = ctx
  const headDim = c.hidden / c.crossHeads
  const heads = (name: string, from: string) =>
    g.op(
      'Transpose',
      [
        g.op('Reshape', [
          linear(ctx, `${prefix}.${name}`, from, c.hidden, c.hidden, { bias: true }),
          g.ints([0, 0, c.crossHeads, headDim]),
        ]),
      ],
      { perm: ints([0, 2, 1, 3]) },
    )
  const context = attend(g, heads('q_linear', x), heads('to_k', s.y), heads('to_v', s.y), { rank: 4, headDim }, s.bias)
  const merged = g.op('Reshape', [g.op('Transpose', [context], { perm: ints([0, 2, 1, 3]) }), g.ints([0, 0, c.hidden])])
  return linear(ctx, `${prefix}.proj`, merged, c.hidden, c.hidden, { bias: true })
}

/**
 * GLUMBConv on the token grid: 1×1 conv D→2F (+b) and SiLU, depthwise 3×3
 * (+b, pad 1), split into x and gate halves, x·SiLU(gate), 1×1 conv F→D (no bias).
 */
function gluMbConv(ctx: Ctx, prefix: string, tokens: string, c: SanaDitConfig): string {
  const { g, w } = ctx
  const side = c.inputSize / c.patchSize
  const wide = 2 * c.ffnInner
  const conv = (name: string, shape: number[], bias: boolean) => {
    const key = `${prefix}.${name}.conv`
    const weight = g.weight(`${key}.weight`, shape, w.tensor(`${key}.weight`, shape))
    return bias
      ? [weight, g.weight(`${key}.bias`, [shape[0] as number], w.bias(`${key}.bias`, shape[0] as number))]
      : [weight]
  }
  const grid = g.op('Reshape', [
    g.op('Transpose', [tokens], { perm: ints([0, 2, 1]) }),
    g.ints([0, c.hidden, side, side]),
  ])
  const inverted = silu(
    g,
    g.op('Conv', [grid, ...conv('inverted_conv', [wide, c.hidden, 1, 1], true)], { kernel_shape: ints([1, 1]) }),
  )
  const depthwise = g.op('Conv', [inverted, ...conv('depth_conv', [wide, 1, 3, 3], true)], {
    kernel_shape: ints([3, 3]),
    pads: ints([1, 1, 1, 1]),
    group: int(wide),
  })
  const [value, gate] = g.opN('Split', [depthwise], 2, { axis: int(1) }) as [string, string]
  const point = g.op(
    'Conv',
    [g.op('Mul', [value, silu(g, gate)]), ...conv('point_conv', [c.hidden, c.ffnInner, 1, 1], false)],
    { kernel_shape: ints([1, 1]) },
  )
  return g.op('Transpose', [g.op('Reshape', [point, g.ints([0, c.hidden, side * side])])], { perm: ints([0, 2, 1]) })
}

/** T2IFinalLayer (shift and scale from t itself, not t_block), then unpatchify to [B,C,S,S]. */
function finalLayer(ctx: Ctx, x: string, s: Shared, c: SanaDitConfig): string {
  const { g, w } = ctx
  const tableKey = 'final_layer.scale_shift_table'
  const table = g.weight(tableKey, [2, c.hidden], w.tensor(tableKey, [2, c.hidden]))
  const [shift, scale] = g.opN('Split', [g.op('Add', [table, g.op('Unsqueeze', [s.t, g.ints([1])])])], 2, {
    axis: int(1),
  }) as [string, string]
  const p = c.patchSize
  const out = linear(
    ctx,
    'final_layer.linear',
    modulate(g, plainNorm(g, x, s.ones), shift, scale),
    c.hidden,
    p * p * c.outChannels,
    { bias: true },
  )
  const velocity = unpatchify(g, out, c)
  // pred_sigma: the first half of the channels is the velocity (forward_with_dpmsolver's chunk).
  return c.outChannels === c.inChannels
    ? velocity
    : g.op('Slice', [velocity, g.ints([0]), g.ints([c.inChannels]), g.ints([1])])
}

/** [B,T,p·p·C'] → [B,C',S,S]: token (h,w), patch offset (p,q), channel → channel, h·p, w·q. */
function unpatchify(g: GraphBuilder, tokens: string, c: SanaDitConfig): string {
  const p = c.patchSize
  const side = c.inputSize / p
  const grid = g.op('Reshape', [tokens, g.ints([0, side, side, p, p, c.outChannels])])
  return g.op('Reshape', [
    g.op('Transpose', [grid], { perm: ints([0, 5, 1, 3, 2, 4]) }),
    g.ints([0, c.outChannels, c.inputSize, c.inputSize]),
  ])
}

function modulate(g: GraphBuilder, x: string, shift: string, scale: string): string {
  return g.op('Add', [g.op('Mul', [x, g.op('Add', [scale, g.scalar(1)])]), shift])
}

/** LayerNorm without affine (adaLN supplies scale and shift), eps 1e-6. */
function plainNorm(g: GraphBuilder, x: string, ones: string): string {
  return g.op('LayerNormalization', [x, ones], { axis: int(-1), epsilon: float(LAYER_NORM_EPS) })
}
