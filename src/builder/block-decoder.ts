/**
 * block_decoder.onnx: Next-Block Prediction, one slot per call (Kelix's
 * `token_head`, a `UnifiedTokenDecoder`).
 *
 *   inputs   hidden_state [B,H]        block_ids [B,J]  (ids already chosen, J = 0..8)
 *            vocab_part []             (which ids to compute logits for; see src/engine/vocab-parts.ts)
 *   rows     x_0 = hidden_state,       x_j = embed(block_ids[j-1])          → X [B,J+1,H]
 *   z = input_linear(X) + slot_embedding[0..J]
 *   z += attn(LayerNorm z)   (causal over the slots, q/k/v/o with biases, no RoPE)
 *   z += SwiGLU(LayerNorm z)
 *   out = X[:, J] + output_linear(z[:, J]) → the LLM's final RMSNorm → its LM head → logits [B, part size]
 *
 * Slot j therefore sees the hidden state and ids 0..j-1 of the block being built.
 * The LM head is `model.model.output` (the checkpoint's top-level `lm_head` is
 * never used). With `vocabParts: false` the graph has the older form: no
 * vocab_part, logits over the whole vocabulary from one MatMul (the same weights).
 *
 * `precision` sets how the LM head (int8/int4: MatMulNBits, per part as per
 * whole) and the embedding table are stored; the block decoder's own layers
 * stay float32 (a few million parameters).
 */
import type { Architecture } from './architecture.js'
import { LLM_PREFIX, embeddingRows } from './decoder.js'
import { int, ints, type BuiltGraph, type SharedWeight } from './graph.js'
import { attend, layerNorm, linear, MASKED, rmsNorm, swiGlu, type Ctx as LayerCtx } from './layers.js'
import { lmHeadByPart, wholeLmHead } from './lm-head-parts.js'
import { FP32, type Precision } from './precision.js'
import type { CheckpointWeights } from './weights.js'

type Ctx = LayerCtx<CheckpointWeights>

export const BLOCK_DECODER_OPSET = 17

/** Prefix of the block decoder's keys in the published checkpoint. */
const HEAD = `${LLM_PREFIX}.token_head`
/** PyTorch's `nn.LayerNorm` default, which the block decoder's norms keep. */
const LAYER_NORM_EPS = 1e-5

export interface BlockDecoderOptions {
  /** Declare `vocab_part` and compute only that part's logits. Default true; false writes the older form. */
  vocabParts?: boolean
}

/** `table` is the shared embedding table (decoder.ts `embeddingTable`), which decoder.onnx reads too. */
export function buildBlockDecoder(
  ctx: Ctx,
  arch: Architecture,
  table: SharedWeight,
  opts: BlockDecoderOptions = {},
  precision: Precision = FP32,
): BuiltGraph {
  const vocabParts = opts.vocabParts ?? true
  const { g } = ctx
  const { config } = arch
  const { hidden_size: hidden, rms_norm_eps: eps } = config.llm
  const { hidden_size: width } = config.block_decoder
  const hiddenState = g.input('hidden_state', 'float32', ['batch', hidden])
  const blockIds = g.input('block_ids', 'int64', ['batch', 'slots'])
  const part = vocabParts ? g.input('vocab_part', 'int64', []) : undefined

  const rows = g.op('Concat', [g.op('Unsqueeze', [hiddenState, g.ints([1])]), embeddingRows(g, table, blockIds)], {
    axis: int(1),
  })
  const length = g.op('Shape', [rows], { start: int(1), end: int(2) })
  // Only the first block_size rows of the learned slot table are ever used.
  const slotKey = `${HEAD}.position_embedding.weight`
  const slotTable = g.weight(
    slotKey,
    [config.block_size, width],
    ctx.w.rows(slotKey, [arch.blockDecoder.positionRows, width], 0, config.block_size),
  )
  const slots = g.op('Slice', [slotTable, g.ints([0]), length, g.ints([0])])
  let z = g.op('Add', [linear(ctx, `${HEAD}.input_linear`, rows, hidden, width, { bias: true }), slots])

  const bias = causalBias(ctx, length)
  for (let i = 0; i < arch.blockDecoder.layers; i++)
    z = slotLayer(ctx, `${HEAD}.transformer.layers.${i}`, z, bias, config.block_decoder)

  const last = (t: string) => g.op('Gather', [t, g.intScalar(-1)], { axis: int(1) })
  const out = g.op('Add', [last(rows), linear(ctx, `${HEAD}.output_linear`, last(z), width, hidden, { bias: true })])
  const normed = rmsNorm(ctx, `${LLM_PREFIX}.norm.scale`, out, hidden, eps)
  if (part === undefined) {
    g.output(
      'logits',
      'float32',
      ['batch', config.vocab.vocab_size],
      wholeLmHead(ctx, config, normed, precision.lmHead),
    )
  } else {
    g.output('logits', 'float32', ['batch', 'part_vocab'], lmHeadByPart(ctx, config, normed, part, precision.lmHead))
  }
  return g.finish(BLOCK_DECODER_OPSET, 'Kelix block decoder: logits for the next slot of the block being built')
}

/** One pre-norm transformer layer over the slots: LayerNorms, attention with biases, SwiGLU. */
function slotLayer(
  ctx: Ctx,
  layer: string,
  z: string,
  bias: string,
  sizes: Architecture['config']['block_decoder'],
): string {
  const { g } = ctx
  const { hidden_size: width, num_heads: heads, intermediate_size: inner } = sizes
  const headDim = width / heads
  const split = (t: string) =>
    g.op('Transpose', [g.op('Reshape', [t, g.ints([0, 0, heads, headDim])])], { perm: ints([0, 2, 1, 3]) })
  const a = layerNorm(ctx, `${layer}.sa_norm`, z, width, LAYER_NORM_EPS)
  const [q, k, v] = (['q', 'k', 'v'] as const).map((n) =>
    split(linear(ctx, `${layer}.attn.${n}_proj`, a, width, width, { bias: true })),
  )
  const context = attend(g, q as string, k as string, v as string, { rank: 4, headDim }, bias)
  const merged = g.op('Reshape', [g.op('Transpose', [context], { perm: ints([0, 2, 1, 3]) }), g.ints([0, 0, width])])
  z = g.op('Add', [z, linear(ctx, `${layer}.attn.output_proj`, merged, width, width, { bias: true })])
  const m = layerNorm(ctx, `${layer}.mlp_norm`, z, width, LAYER_NORM_EPS)
  return g.op('Add', [z, swiGlu(ctx, `${layer}.mlp`, m, width, inner)])
}

/** [L,L] additive causal bias over the slots. */
function causalBias(ctx: Ctx, length: string): string {
  const { g } = ctx
  const n = g.op('Squeeze', [length, g.ints([0])])
  const range = g.op('Range', [g.intScalar(0), n, g.intScalar(1)])
  const allowed = g.op('LessOrEqual', [
    g.op('Unsqueeze', [range, g.ints([0])]),
    g.op('Unsqueeze', [range, g.ints([1])]),
  ])
  return g.op('Where', [allowed, g.scalar(0), g.scalar(MASKED)])
}
