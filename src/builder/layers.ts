/**
 * Neural-network building blocks over GraphBuilder: each adds its weights
 * (by checkpoint key, through `Weights`) and its nodes.
 */
import { float, int, ints, type GraphBuilder } from './graph.js'
import { ACCURACY_LEVEL, bitsOf, isQuantized, type QuantizedPrecision, type WeightPrecision } from './precision.js'
import { blockQuantized, QUANT_BLOCK } from './quantize.js'
import type { TensorData } from './tensor-data.js'
import type { Weights } from './weights.js'

export interface Ctx<W extends Weights = Weights> {
  g: GraphBuilder
  w: W
  /** How `linear` stores this graph's Linear weights (default fp32: a float32 MatMul). */
  linearPrecision?: WeightPrecision
}

/** x @ W (+ b) for the Linear `name` (`name.weight` stored [out, in], `name.bias`). */
export function linear(
  ctx: Ctx,
  name: string,
  x: string,
  inDim: number,
  outDim: number,
  opts: { bias?: boolean } = {},
): string {
  const key = `${name}.weight`
  const precision = ctx.linearPrecision ?? 'fp32'
  const y = isQuantized(precision)
    ? matMulNBits(ctx.g, x, key, ctx.w.storedLinear(key, inDim, outDim), precision)
    : ctx.g.op('MatMul', [x, ctx.g.weight(key, [inDim, outDim], ctx.w.linear(key, inDim, outDim))])
  if (!opts.bias) return y
  return ctx.g.op('Add', [y, ctx.g.weight(`${name}.bias`, [outDim], ctx.w.bias(`${name}.bias`, outDim))])
}

/**
 * x @ Wᵀ for a weight `rows` stored [N, K] (a Linear's layout), as ONNX
 * Runtime's MatMulNBits over its block-quantized codes (quantize.ts): the
 * initializers `name` (uint8 codes) and `name.scales`, in the graph `g` itself
 * so ONNX Runtime pre-packs them.
 */
export function matMulNBits(
  g: GraphBuilder,
  x: string,
  name: string,
  rows: TensorData,
  precision: QuantizedPrecision,
): string {
  const q = blockQuantized(rows, bitsOf(precision))
  const codes = g.storedWeight(name, 'uint8', q.codes.dims, q.codes, q.n * q.k)
  const scales = g.storedWeight(`${name}.scales`, 'float32', q.scales.dims, q.scales, 0)
  return g.msOp('MatMulNBits', [x, codes, scales], {
    K: int(q.k),
    N: int(q.n),
    bits: int(q.bits),
    block_size: int(QUANT_BLOCK),
    accuracy_level: int(ACCURACY_LEVEL),
  })
}

/**
 * RMSNorm over the last axis: x / sqrt(mean(x^2) + eps) * scale, in the node
 * pattern PyTorch exports (Pow, ReduceMean, Add, Sqrt, Div, Mul), which ONNX
 * Runtime fuses into one SimplifiedLayerNormalization kernel. `scaleKey` is the
 * scale's full key (Kelix's LLM names it `….scale`).
 */
export function rmsNorm(ctx: Ctx, scaleKey: string, x: string, dim: number, eps: number): string {
  const { g } = ctx
  const scale = g.weight(scaleKey, [dim], ctx.w.scale(scaleKey, dim))
  const meanSquare = g.op('ReduceMean', [g.op('Pow', [x, g.scalar(2)])], { axes: ints([-1]), keepdims: int(1) })
  return g.op('Mul', [g.op('Div', [x, g.op('Sqrt', [g.op('Add', [meanSquare, g.scalar(eps)])])]), scale])
}

/**
 * RMSNorm of `x + residual`, and that sum (the next residual), as ONNX
 * Runtime's fused SkipSimplifiedLayerNormalization: one kernel where the
 * exported pattern is an Add the runtime leaves unfused beside its RMSNorm.
 */
export function skipRmsNorm(
  ctx: Ctx,
  scaleKey: string,
  x: string,
  residual: string,
  dim: number,
  eps: number,
): { normed: string; sum: string } {
  const scale = ctx.g.weight(scaleKey, [dim], ctx.w.scale(scaleKey, dim))
  const [normed, , , sum] = ctx.g.msOpN(
    'SkipSimplifiedLayerNormalization',
    [x, residual, scale],
    [true, false, false, true],
    { epsilon: float(eps) },
  )
  return { normed: normed as string, sum: sum as string }
}

/** LayerNorm over the last axis with learned `name.weight` and `name.bias`. */
export function layerNorm(ctx: Ctx, name: string, x: string, dim: number, eps: number): string {
  const scale = ctx.g.weight(`${name}.weight`, [dim], ctx.w.scale(`${name}.weight`, dim))
  const bias = ctx.g.weight(`${name}.bias`, [dim], ctx.w.bias(`${name}.bias`, dim))
  return ctx.g.op('LayerNormalization', [x, scale, bias], { axis: int(-1), epsilon: float(eps) })
}

export function silu(g: GraphBuilder, x: string): string {
  return g.op('Mul', [x, g.op('Sigmoid', [x])])
}

/** Exact GELU: 0.5 x (1 + erf(x / sqrt 2)) (PyTorch's `nn.GELU()`). */
export function gelu(g: GraphBuilder, x: string): string {
  const erf = g.op('Erf', [g.op('Mul', [x, g.scalar(Math.SQRT1_2)])])
  return g.op('Mul', [g.op('Mul', [x, g.scalar(0.5)]), g.op('Add', [erf, g.scalar(1)])])
}

/** Tanh-approximated GELU: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))) (PyTorch's `GELU(approximate='tanh')`, `gelu_pytorch_tanh`). */
export function geluTanh(g: GraphBuilder, x: string): string {
  const cubic = g.op('Mul', [g.op('Mul', [g.op('Mul', [x, x]), x]), g.scalar(0.044715)])
  const inner = g.op('Mul', [g.op('Add', [x, cubic]), g.scalar(Math.sqrt(2 / Math.PI))])
  return g.op('Mul', [g.op('Mul', [x, g.scalar(0.5)]), g.op('Add', [g.op('Tanh', [inner]), g.scalar(1)])])
}

/** Kelix's gated MLP (LLM and block decoder): w2(silu(w1·x) ⊙ w3·x). */
export function swiGlu(ctx: Ctx, name: string, x: string, dim: number, inner: number): string {
  const gate = silu(ctx.g, linear(ctx, `${name}.w1`, x, dim, inner))
  const up = linear(ctx, `${name}.w3`, x, dim, inner)
  return linear(ctx, `${name}.w2`, ctx.g.op('Mul', [gate, up]), inner, dim)
}

/**
 * softmax(q k^T * scale + bias) v over the last two axes. q [..., Sq, d],
 * k and v [..., Sk, d]; `bias` broadcasts to [..., Sq, Sk] (0 or a large negative).
 */
export function attend(
  g: GraphBuilder,
  q: string,
  k: string,
  v: string,
  shape: { rank: number; headDim: number },
  bias?: string,
): string {
  const { rank, headDim } = shape
  const kT = g.op('Transpose', [k], { perm: ints(transposeLastTwo(rank)) })
  let scores = g.op('Mul', [g.op('MatMul', [q, kT]), g.scalar(1 / Math.sqrt(headDim))])
  if (bias !== undefined) scores = g.op('Add', [scores, bias])
  return g.op('MatMul', [g.op('Softmax', [scores], { axis: int(-1) }), v])
}

/** Rotate-half RoPE: x·cos + [−x₂, x₁]·sin over the last axis, with cos and sin already repeated to its full width. */
export function applyRope(g: GraphBuilder, x: string, cos: string, sin: string, width: number): string {
  const half = width / 2
  const first = g.op('Slice', [x, g.ints([0]), g.ints([half]), g.ints([-1])])
  const second = g.op('Slice', [x, g.ints([half]), g.ints([width]), g.ints([-1])])
  const rotated = g.op('Concat', [g.op('Neg', [second]), first], { axis: int(-1) })
  return g.op('Add', [g.op('Mul', [x, cos]), g.op('Mul', [rotated, sin])])
}

function transposeLastTwo(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i)
  perm[rank - 2] = rank - 1
  perm[rank - 1] = rank - 2
  return perm
}

/** The value added to attention scores where attention is not allowed. Finite, so fully masked pad rows stay finite. */
export const MASKED = -1e9
