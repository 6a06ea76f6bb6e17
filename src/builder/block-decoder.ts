/**
 * block_decoder.onnx: Next-Block Prediction, one slot per call.
 *
 *   inputs   hidden_state [B,H]        block_ids [B,J]  (ids already chosen, J = 0..8)
 *            vocab_part []             (which ids to compute logits for; see src/engine/vocab-parts.ts)
 *   rows     x_0 = hidden_state,       x_j = embed(block_ids[j-1])          → X [B,J+1,H]
 *   z = in_proj(X) + slot_embedding[0..J] → one causal layer (d, RMSNorm, SwiGLU)
 *   out = X[:, J] + out_proj(z[:, J]) → final RMSNorm of the LLM → lm_head → logits [B,part size]
 *
 * Slot j therefore sees the hidden state and ids 0..j-1 of the block being built.
 * With `vocabParts: false` the graph has the older form: no vocab_part, logits
 * over the whole vocabulary from one MatMul (the same weights).
 */
import type { KelixConfig } from '../engine/model-config.js'
import { int, ints } from './graph.js'
import { embeddingTable } from './decoder.js'
import { attend, linear, MASKED, rmsNorm, swiGlu, type Ctx } from './layers.js'
import { lmHeadByPart } from './lm-head-parts.js'

export const BLOCK_DECODER_OPSET = 17

export interface BlockDecoderOptions {
  /** Declare `vocab_part` and compute only that part's logits. Default true; false writes the older form. */
  vocabParts?: boolean
}

export function buildBlockDecoder(ctx: Ctx, config: KelixConfig, lmHeadGain: number, opts: BlockDecoderOptions = {}): Uint8Array {
  const vocabParts = opts.vocabParts ?? true
  const { g } = ctx
  const { hidden_size: hidden, rms_norm_eps: eps } = config.llm
  const { hidden_size: width, num_heads: heads, intermediate_size: inner } = config.block_decoder
  const headDim = width / heads
  const hiddenState = g.input('hidden_state', 'float32', ['batch', hidden])
  const blockIds = g.input('block_ids', 'int64', ['batch', 'slots'])
  const part = vocabParts ? g.input('vocab_part', 'int64', []) : undefined

  const rows = g.op('Concat', [
    g.op('Unsqueeze', [hiddenState, g.ints([1])]),
    g.op('Gather', [embeddingTable(ctx, config), blockIds], { axis: int(0) }),
  ], { axis: int(1) })
  const length = g.op('Shape', [rows], { start: int(1), end: int(2) })
  const slotTable = g.weight('block_decoder.slot_embedding.weight', [config.block_size, width], ctx.w.random('block_decoder.slot_embedding.weight', config.block_size * width, 1))
  const slots = g.op('Slice', [slotTable, g.ints([0]), length, g.ints([0])])
  let z = g.op('Add', [linear(ctx, 'block_decoder.in_proj', rows, hidden, width, { bias: true }), slots])

  const split = (t: string) => g.op('Transpose', [g.op('Reshape', [t, g.ints([0, 0, heads, headDim])])], { perm: ints([0, 2, 1, 3]) })
  const a = rmsNorm(ctx, 'block_decoder.layer.input_layernorm', z, width, eps)
  const [q, k, v] = (['q', 'k', 'v'] as const).map((n) => split(linear(ctx, `block_decoder.layer.self_attn.${n}_proj`, a, width, width)))
  const context = attend(g, q as string, k as string, v as string, { rank: 4, headDim }, causalBias(ctx, length))
  const merged = g.op('Reshape', [g.op('Transpose', [context], { perm: ints([0, 2, 1, 3]) }), g.ints([0, 0, width])])
  z = g.op('Add', [z, linear(ctx, 'block_decoder.layer.self_attn.o_proj', merged, width, width)])
  const m = rmsNorm(ctx, 'block_decoder.layer.post_attention_layernorm', z, width, eps)
  z = g.op('Add', [z, swiGlu(ctx, 'block_decoder.layer.mlp', m, width, inner)])

  const last = (t: string) => g.op('Gather', [t, g.intScalar(-1)], { axis: int(1) })
  const out = g.op('Add', [last(rows), linear(ctx, 'block_decoder.out_proj', last(z), width, hidden, { bias: true })])
  const normed = rmsNorm(ctx, 'model.norm', out, hidden, eps)
  if (part === undefined) {
    g.output('logits', 'float32', ['batch', config.vocab.vocab_size], linear(ctx, 'lm_head', normed, hidden, config.vocab.vocab_size, { gain: lmHeadGain }))
  } else {
    g.output('logits', 'float32', ['batch', 'part_vocab'], lmHeadByPart(ctx, config, normed, part, lmHeadGain))
  }
  return g.toBytes(BLOCK_DECODER_OPSET, 'Kelix block decoder: logits for the next slot of the block being built')
}

/** [L,L] additive causal bias over the slots. */
function causalBias(ctx: Ctx, length: string): string {
  const { g } = ctx
  const n = g.op('Squeeze', [length, g.ints([0])])
  const range = g.op('Range', [g.intScalar(0), n, g.intScalar(1)])
  const allowed = g.op('LessOrEqual', [g.op('Unsqueeze', [range, g.ints([0])]), g.op('Unsqueeze', [range, g.ints([1])])])
  return g.op('Where', [allowed, g.scalar(0), g.scalar(MASKED)])
}
