/**
 * Neural-network building blocks over GraphBuilder: each adds its weights
 * (named like the Hugging Face checkpoints they stand for) and its nodes.
 */
import { float, int, ints, type GraphBuilder } from './graph.js'
import type { WeightSource } from './weights.js'

export interface Ctx {
  g: GraphBuilder
  w: WeightSource
}

/** x @ W (+ b); W stored [in, out], initialised with std 1/sqrt(in) times `gain`. */
export function linear(ctx: Ctx, name: string, x: string, inDim: number, outDim: number, opts: { bias?: boolean; gain?: number } = {}): string {
  const weight = ctx.g.weight(`${name}.weight`, [inDim, outDim], ctx.w.random(`${name}.weight`, inDim * outDim, (opts.gain ?? 1) / Math.sqrt(inDim)))
  const y = ctx.g.op('MatMul', [x, weight])
  if (!opts.bias) return y
  const bias = ctx.g.weight(`${name}.bias`, [outDim], ctx.w.random(`${name}.bias`, outDim, 0.02))
  return ctx.g.op('Add', [y, bias])
}

/**
 * RMSNorm over the last axis: x / sqrt(mean(x^2) + eps) * gain, in the node
 * pattern PyTorch exports (Pow, ReduceMean, Add, Sqrt, Div, Mul), which ONNX
 * Runtime fuses into one SimplifiedLayerNormalization kernel.
 */
export function rmsNorm(ctx: Ctx, name: string, x: string, dim: number, eps: number): string {
  const { g } = ctx
  const gain = g.weight(`${name}.weight`, [dim], ctx.w.around(`${name}.weight`, dim, 1, 0.1))
  const meanSquare = g.op('ReduceMean', [g.op('Pow', [x, g.scalar(2)])], { axes: ints([-1]), keepdims: int(1) })
  return g.op('Mul', [g.op('Div', [x, g.op('Sqrt', [g.op('Add', [meanSquare, g.scalar(eps)])])]), gain])
}

/** LayerNorm over the last axis with learned scale and bias. */
export function layerNorm(ctx: Ctx, name: string, x: string, dim: number, eps = 1e-6): string {
  const scale = ctx.g.weight(`${name}.weight`, [dim], ctx.w.around(`${name}.weight`, dim, 1, 0.1))
  const bias = ctx.g.weight(`${name}.bias`, [dim], ctx.w.random(`${name}.bias`, dim, 0.02))
  return ctx.g.op('LayerNormalization', [x, scale, bias], { axis: int(-1), epsilon: float(eps) })
}

export function silu(g: GraphBuilder, x: string): string {
  return g.op('Mul', [x, g.op('Sigmoid', [x])])
}

/** Exact GELU: 0.5 x (1 + erf(x / sqrt 2)). */
export function gelu(g: GraphBuilder, x: string): string {
  const erf = g.op('Erf', [g.op('Mul', [x, g.scalar(Math.SQRT1_2)])])
  return g.op('Mul', [g.op('Mul', [x, g.scalar(0.5)]), g.op('Add', [erf, g.scalar(1)])])
}

/** Gated MLP used by Qwen3 and the block decoder: down(silu(gate(x)) * up(x)). */
export function swiGlu(ctx: Ctx, name: string, x: string, dim: number, inner: number): string {
  const gate = silu(ctx.g, linear(ctx, `${name}.gate_proj`, x, dim, inner))
  const up = linear(ctx, `${name}.up_proj`, x, dim, inner)
  return linear(ctx, `${name}.down_proj`, ctx.g.op('Mul', [gate, up]), inner, dim)
}

/** Two-layer GELU MLP used by the SigLIP-style vision encoder. */
export function geluMlp(ctx: Ctx, name: string, x: string, dim: number, inner: number): string {
  const hidden = gelu(ctx.g, linear(ctx, `${name}.fc1`, x, dim, inner, { bias: true }))
  return linear(ctx, `${name}.fc2`, hidden, inner, dim, { bias: true })
}

/**
 * softmax(q k^T * scale + bias) v over the last two axes. q [..., Sq, d],
 * k and v [..., Sk, d]; `bias` broadcasts to [..., Sq, Sk] (0 or a large negative).
 */
export function attend(g: GraphBuilder, q: string, k: string, v: string, shape: { rank: number; headDim: number }, bias?: string): string {
  const { rank, headDim } = shape
  const kT = g.op('Transpose', [k], { perm: ints(transposeLastTwo(rank)) })
  let scores = g.op('Mul', [g.op('MatMul', [q, kT]), g.scalar(1 / Math.sqrt(headDim))])
  if (bias !== undefined) scores = g.op('Add', [scores, bias])
  return g.op('MatMul', [g.op('Softmax', [scores], { axis: int(-1) }), v])
}

function transposeLastTwo(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i)
  perm[rank - 2] = rank - 1
  perm[rank - 1] = rank - 2
  return perm
}

/** The value added to attention scores where attention is not allowed. Finite, so fully masked pad rows stay finite. */
export const MASKED = -1e9
