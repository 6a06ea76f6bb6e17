/**
 * visual_tokenizer.onnx: Kelix-Tok for one image.
 *
 *   pixel_patches [N, 3·p·p] (row-major over the patch grid, each patch channel-major)
 *   grid_hw [2] (patch rows, patch columns)
 *     ──► patch embedding + position table resized (bilinear) to the grid
 *     ──► ViT layers (LayerNorm, GELU MLP) ──► 2×2 merge ──► MLP ──► K sub-vectors
 *     ──► LayerNorm each ──► nearest neighbour in its own sub-codebook ──► codes [N/4, K]
 */
import type { KelixConfig } from '../engine/model-config.js'
import { int, ints, str } from './graph.js'
import { attend, gelu, geluMlp, layerNorm, linear, type Ctx } from './layers.js'

export const VISUAL_TOKENIZER_OPSET = 17

export interface VisionEncoderSpec {
  width: number
  layers: number
  heads: number
  mlp: number
  /** Side of the learned position table (27 in Kelix-Tok). */
  positionTable: number
  mergerHidden: number
  /** Dimensions of each sub-vector / codebook entry. */
  codeDim: number
}

export function buildVisualTokenizer(ctx: Ctx, config: KelixConfig, spec: VisionEncoderSpec): Uint8Array {
  const { g } = ctx
  const { patch_size: patch, merge_size: merge } = config.vision
  const { num_codebooks: books, codebook_size: codes } = config.vocab
  const { width, positionTable: side } = spec
  const patches = g.input('pixel_patches', 'float32', ['patches', 3 * patch * patch])
  const grid = g.input('grid_hw', 'int64', [2])

  const table = g.weight('vision.position_embedding', [1, width, side, side], ctx.w.random('vision.position_embedding', width * side * side, 0.5))
  const resized = g.op('Resize', [table, '', '', g.op('Concat', [g.ints([1, width]), grid], { axis: int(0) })], {
    mode: str('linear'),
    coordinate_transformation_mode: str('half_pixel'),
  })
  const positions = g.op('Transpose', [g.op('Reshape', [resized, g.ints([width, -1])])], { perm: ints([1, 0]) })
  let x = g.op('Add', [linear(ctx, 'vision.patch_embedding', patches, 3 * patch * patch, width, { bias: true }), positions])

  for (let i = 0; i < spec.layers; i++) x = encoderLayer(ctx, `vision.encoder.layers.${i}`, x, spec)
  x = layerNorm(ctx, 'vision.post_layernorm', x, width)

  // [gh·gw, D] → [gh/2, 2, gw/2, 2, D] → [gh/2, gw/2, 2, 2, D] → [positions, 4D]
  const half = g.op('Div', [grid, g.ints([merge])])
  const rows = g.op('Slice', [half, g.ints([0]), g.ints([1])])
  const cols = g.op('Slice', [half, g.ints([1]), g.ints([2])])
  const windows = g.op('Concat', [rows, g.ints([merge]), cols, g.ints([merge, width])], { axis: int(0) })
  const merged = g.op('Reshape', [
    g.op('Transpose', [g.op('Reshape', [x, windows])], { perm: ints([0, 2, 1, 3, 4]) }),
    g.ints([-1, merge * merge * width]),
  ])
  const mergedWidth = merge * merge * width
  let features = layerNorm(ctx, 'vision.merger.ln_q', merged, mergedWidth)
  features = gelu(g, linear(ctx, 'vision.merger.mlp.0', features, mergedWidth, spec.mergerHidden, { bias: true }))
  features = linear(ctx, 'vision.merger.mlp.2', features, spec.mergerHidden, books * spec.codeDim, { bias: true })
  return g.toBytes(VISUAL_TOKENIZER_OPSET, nearestCodes(ctx, features, books, codes, spec.codeDim))
}

function encoderLayer(ctx: Ctx, prefix: string, x: string, spec: VisionEncoderSpec): string {
  const { g } = ctx
  const { width, heads } = spec
  const headDim = width / heads
  const a = layerNorm(ctx, `${prefix}.layer_norm1`, x, width)
  const split = (n: string) => g.op('Transpose', [g.op('Reshape', [linear(ctx, `${prefix}.self_attn.${n}_proj`, a, width, width, { bias: true }), g.ints([-1, heads, headDim])])], { perm: ints([1, 0, 2]) })
  const context = attend(g, split('q'), split('k'), split('v'), { rank: 3, headDim })
  const merged = g.op('Reshape', [g.op('Transpose', [context], { perm: ints([1, 0, 2]) }), g.ints([-1, width])])
  x = g.op('Add', [x, linear(ctx, `${prefix}.self_attn.out_proj`, merged, width, width, { bias: true })])
  return g.op('Add', [x, geluMlp(ctx, `${prefix}.mlp`, layerNorm(ctx, `${prefix}.layer_norm2`, x, width), width, spec.mlp)])
}

/**
 * Splits features into K sub-vectors, normalises each, and picks the nearest
 * entry of sub-codebook k: argmin |x - c|^2 = argmax (x·c - |c|^2 / 2).
 * Codebook entries are stored already normalised. Returns the graph's doc string.
 */
function nearestCodes(ctx: Ctx, features: string, books: number, codes: number, dim: number): string {
  const { g } = ctx
  const sub = g.op('Reshape', [features, g.ints([-1, books, dim])])
  const normed = g.op('LayerNormalization', [sub, g.scalar(1, [dim]), g.scalar(0, [dim])], { axis: int(-1), epsilon: { kind: 'float', value: 1e-6 } })
  const { transposed, halfSquaredNorm } = normalisedCodebook(ctx, books, codes, dim)
  const scores = g.op('Sub', [
    g.op('MatMul', [g.op('Transpose', [normed], { perm: ints([1, 0, 2]) }), g.weight('vision.quantizer.codebook_t', [books, dim, codes], transposed)]),
    g.weight('vision.quantizer.half_squared_norm', [books, 1, codes], halfSquaredNorm),
  ])
  const nearest = g.op('ArgMax', [scores], { axis: int(2), keepdims: int(0) })
  g.output('codes', 'int64', ['positions', books], g.op('Transpose', [nearest], { perm: ints([1, 0]) }))
  return 'Kelix visual tokenizer: image patches to sub-codebook codes'
}

function normalisedCodebook(ctx: Ctx, books: number, codes: number, dim: number) {
  const raw = ctx.w.random('vision.quantizer.codebook', books * codes * dim, 1)
  const transposed = new Float32Array(books * dim * codes)
  const halfSquaredNorm = new Float32Array(books * codes)
  for (let k = 0; k < books; k++) {
    for (let c = 0; c < codes; c++) {
      const entry = raw.subarray((k * codes + c) * dim, (k * codes + c + 1) * dim)
      const mean = entry.reduce((s, v) => s + v, 0) / dim
      const variance = entry.reduce((s, v) => s + (v - mean) * (v - mean), 0) / dim
      const inv = 1 / Math.sqrt(variance + 1e-6)
      let squared = 0
      for (let d = 0; d < dim; d++) {
        const value = ((entry[d] as number) - mean) * inv
        transposed[(k * dim + d) * codes + c] = value
        squared += value * value
      }
      halfSquaredNorm[k * codes + c] = squared / 2
    }
  }
  return { transposed, halfSquaredNorm }
}
