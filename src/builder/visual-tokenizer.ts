/**
 * visual_tokenizer.onnx: Kelix-Tok for one image (checkpoint prefix `visual_tokenizer.`).
 *
 *   pixel_patches [N, 3·p·p] (row-major over the patch grid, each patch channel-major)
 *   grid_hw [2] (patch rows, patch columns)
 *     ──► patch embedding + position table resized (bilinear, half-pixel) to the grid
 *     ──► ViT layers: LayerNorm → attention with 2-D RoPE → LayerNorm → tanh-GELU MLP
 *     ──► ln_post ──► 2×2 merge ──► LayerNorm (eps 1e-5) → linear → GELU → linear (mlp_AR)
 *     ──► encoder linear ──► K sub-vectors ──► learned LayerNorm each (z_norm, eps 1e-5)
 *     ──► nearest entry of its own sub-codebook ──► codes [N/4, K]
 *
 * 2-D RoPE: a patch at (row, col) of the grid rotates each head's halves
 * (j, j + d/2) by the angles [row·f₀ … row·f_{d/4−1}, col·f₀ … col·f_{d/4−1}],
 * f_i = θ^(−4i/d). The codebooks are precomputed by the converter from the
 * frozen tables (src/convert/codebooks.ts) and come in as one tensor.
 */
import type { Architecture, VisionEncoderSpec } from './architecture.js'
import { float, int, ints, str, type BuiltGraph } from './graph.js'
import { applyRope, attend, gelu, geluTanh, layerNorm, linear, type Ctx as LayerCtx } from './layers.js'
import { reshaped, stacked, type TensorData } from './tensor-data.js'
import type { CheckpointWeights } from './weights.js'

type Ctx = LayerCtx<CheckpointWeights>

export const VISUAL_TOKENIZER_OPSET = 17

const PREFIX = 'visual_tokenizer'
const VIT = `${PREFIX}.visual`
/** The merge projector's and the quantizer's LayerNorms use PyTorch's default epsilon. */
const PROJECTOR_EPS = 1e-5

/** `codebooks` [K, codebook_size, code_dim]: each sub-codebook's entries, already normalised. */
export function buildVisualTokenizer(ctx: Ctx, arch: Architecture, codebooks: TensorData): BuiltGraph {
  const { g } = ctx
  const { config, vision: spec } = arch
  const { patch_size: patch, merge_size: merge } = config.vision
  const { width, positionTable: side } = spec
  const patchValues = 3 * patch * patch
  const patches = g.input('pixel_patches', 'float32', ['patches', patchValues])
  const grid = g.input('grid_hw', 'int64', [2])

  const tableKey = `${VIT}.embeddings.position_embedding.weight`
  const table = g.weight(
    tableKey,
    [1, width, side, side],
    reshaped(ctx.w.transposed(tableKey, [side * side, width]), [1, width, side, side]),
  )
  const resized = g.op('Resize', [table, '', '', g.op('Concat', [g.ints([1, width]), grid], { axis: int(0) })], {
    mode: str('linear'),
    coordinate_transformation_mode: str('half_pixel'),
  })
  const positions = g.op('Transpose', [g.op('Reshape', [resized, g.ints([width, -1])])], { perm: ints([1, 0]) })
  const patchKey = `${VIT}.embeddings.patch_embedding`
  const patchWeight = g.weight(
    `${patchKey}.weight`,
    [patchValues, width],
    ctx.w.transposed(`${patchKey}.weight`, [width, 3, patch, patch]),
  )
  const patchBias = g.weight(`${patchKey}.bias`, [width], ctx.w.bias(`${patchKey}.bias`, width))
  let x = g.op('Add', [g.op('Add', [g.op('MatMul', [patches, patchWeight]), patchBias]), positions])

  const rope = gridRope(ctx, grid, spec)
  for (let i = 0; i < spec.layers; i++) x = encoderLayer(ctx, `${VIT}.encoder.layers.${i}`, x, spec, rope)
  x = layerNorm(ctx, `${VIT}.ln_post`, x, width, spec.layerNormEps)

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
  const llmWidth = config.llm.hidden_size
  let features = layerNorm(ctx, `${PREFIX}.mlp_AR.pre_norm`, merged, mergedWidth, PROJECTOR_EPS)
  features = gelu(g, linear(ctx, `${PREFIX}.mlp_AR.linear_1`, features, mergedWidth, mergedWidth, { bias: true }))
  features = linear(ctx, `${PREFIX}.mlp_AR.linear_2`, features, mergedWidth, llmWidth, { bias: true })
  const { num_codebooks: books } = config.vocab
  features = linear(ctx, `${PREFIX}.encoder`, features, llmWidth, books * arch.quantizer.codeDim, { bias: true })
  g.output('codes', 'int64', ['positions', books], nearestCodes(ctx, arch, features, codebooks))
  return g.finish(VISUAL_TOKENIZER_OPSET, 'Kelix visual tokenizer: image patches to sub-codebook codes')
}

interface GridRope {
  /** [patches, 1, head_dim], broadcast over the heads. */
  cos: string
  sin: string
}

/** cos and sin of each patch's 2-D RoPE angles, from its (row, col) in the row-major patch grid. */
function gridRope(ctx: Ctx, grid: string, spec: VisionEncoderSpec): GridRope {
  const { g } = ctx
  const headDim = spec.width / spec.heads
  const quarter = headDim / 4
  const inverseFrequency = Array.from(
    { length: quarter },
    (_, i) => 1 / Math.pow(spec.ropeTheta, (2 * i) / (headDim / 2)),
  )
  const cols = g.op('Slice', [grid, g.ints([1]), g.ints([2])])
  const index = g.op('Range', [g.intScalar(0), g.op('ReduceProd', [grid], { keepdims: int(0) }), g.intScalar(1)])
  const angles = (ids: string) =>
    g.op('Mul', [g.op('Unsqueeze', [g.op('Cast', [ids], { to: int(1) }), g.ints([1])]), g.floats(inverseFrequency)])
  const perAxis = g.op('Concat', [angles(g.op('Div', [index, cols])), angles(g.op('Mod', [index, cols]))], {
    axis: int(1),
  })
  const full = g.op('Unsqueeze', [g.op('Concat', [perAxis, perAxis], { axis: int(1) }), g.ints([1])])
  return { cos: g.op('Cos', [full]), sin: g.op('Sin', [full]) }
}

function encoderLayer(ctx: Ctx, prefix: string, x: string, spec: VisionEncoderSpec, rope: GridRope): string {
  const { g } = ctx
  const { width, heads } = spec
  const headDim = width / heads
  const a = layerNorm(ctx, `${prefix}.sa_norm`, x, width, spec.layerNormEps)
  const project = (n: string) =>
    g.op('Reshape', [
      linear(ctx, `${prefix}.attn.${n}_proj`, a, width, width, { bias: true }),
      g.ints([-1, heads, headDim]),
    ])
  const rotated = (n: string) => applyRope(g, project(n), rope.cos, rope.sin, headDim)
  const byHead = (t: string) => g.op('Transpose', [t], { perm: ints([1, 0, 2]) })
  const context = attend(g, byHead(rotated('q')), byHead(rotated('k')), byHead(project('v')), { rank: 3, headDim })
  const merged = g.op('Reshape', [g.op('Transpose', [context], { perm: ints([1, 0, 2]) }), g.ints([-1, width])])
  x = g.op('Add', [x, linear(ctx, `${prefix}.attn.output_proj`, merged, width, width, { bias: true })])
  const m = layerNorm(ctx, `${prefix}.mlp_norm`, x, width, spec.layerNormEps)
  const hidden = geluTanh(g, linear(ctx, `${prefix}.mlp.w1`, m, width, spec.mlp, { bias: true }))
  return g.op('Add', [x, linear(ctx, `${prefix}.mlp.w2`, hidden, spec.mlp, width, { bias: true })])
}

/**
 * Splits features into K sub-vectors, normalises each with its own learned
 * LayerNorm (z_norm), and picks the nearest entry of sub-codebook k:
 * argmin |x − c|² = argmax (x·c − |c|²/2). The transposed codebooks and their
 * half squared norms depend only on weights: ONNX Runtime folds them once at load.
 */
function nearestCodes(ctx: Ctx, arch: Architecture, features: string, codebooks: TensorData): string {
  const { g } = ctx
  const { num_codebooks: books, codebook_size: codes } = arch.config.vocab
  const dim = arch.quantizer.codeDim
  const sub = g.op('Reshape', [features, g.ints([-1, books, dim])])
  const standardised = g.op('LayerNormalization', [sub, g.scalar(1, [dim]), g.scalar(0, [dim])], {
    axis: int(-1),
    epsilon: float(PROJECTOR_EPS),
  })
  // Each sub-vector's own LayerNorm, as one [K, dim] scale and shift applied after a unit LayerNorm.
  const zNorm = (part: 'weight' | 'bias') => {
    const key = (k: number) => `${PREFIX}.quantizer.${k}.z_norm.${part}`
    const rows = Array.from({ length: books }, (_, k) =>
      part === 'weight' ? ctx.w.scale(key(k), dim) : ctx.w.bias(key(k), dim),
    )
    return g.weight(`${PREFIX}.quantizer.z_norm.${part}`, [books, dim], stacked(rows))
  }
  const normed = g.op('Add', [g.op('Mul', [standardised, zNorm('weight')]), zNorm('bias')])
  const table = g.weight(`${PREFIX}.quantizer.codebooks`, [books, codes, dim], codebooks)
  const halfSquaredNorm = g.op('Mul', [
    g.op('ReduceSumSquare', [table], { axes: ints([2]), keepdims: int(0) }),
    g.scalar(0.5),
  ])
  const scores = g.op('Sub', [
    g.op('MatMul', [
      g.op('Transpose', [normed], { perm: ints([1, 0, 2]) }),
      g.op('Transpose', [table], { perm: ints([0, 2, 1]) }),
    ]),
    g.op('Unsqueeze', [halfSquaredNorm, g.ints([1])]),
  ])
  const nearest = g.op('ArgMax', [scores], { axis: int(2), keepdims: int(0) })
  return g.op('Transpose', [nearest], { perm: ints([1, 0]) })
}
