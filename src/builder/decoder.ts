/**
 * decoder.onnx: the Qwen3-style LLM over blocks, with a KV cache.
 *
 *   block_ids [B,S,9] ──► sum of embeddings before the first <eob> ──► x [B,S,H]
 *   x ──► L × (RMSNorm → GQA attention with RoPE and q/k norm → RMSNorm → SwiGLU) ──► hidden_states
 *                      │
 *                      └─ new keys/values ──► present_delta.i.*  (this chunk only; the server keeps the cache)
 *                         past_key_values.i.* ++ new ──► present.i.*  (whole cache, only in the conventional form)
 *
 * Attention never concatenates the cache: scores against the past and against
 * the new slots are computed apart and joined (they are D times smaller than
 * the keys), and the two value products are summed. A step therefore reads the
 * cache once instead of copying it. Keys are stored after RoPE. Padding is
 * expressed by attention_mask alone (cache slots may be padded anywhere);
 * position_ids carry each block's true position.
 *
 * Weights are the published checkpoint's (prefix `model.model.`): `sa_norm` /
 * `mlp_norm` RMSNorms (`.scale`), `attn.{q,k,v,output}_proj`, `attn.{q,k}_norm`,
 * SwiGLU `mlp.w1/w3/w2`, the unified table `tok_embeddings.embed_tokens`.
 *
 * `precision` (precision.ts) sets how the Linear weights are stored (float32
 * MatMul, or MatMulNBits at int8/int4) and the embedding table (float32, or
 * float16 cast after the gather); the inputs and outputs are the same.
 */
import { MODEL_FILES } from '../engine/graph-signatures.js'
import type { KelixConfig } from '../engine/model-config.js'
import type { Architecture } from './architecture.js'
import { asFloat16 } from './float16.js'
import { int, ints, SharedWeight, type BuiltGraph, type GraphBuilder } from './graph.js'
import { applyRope, linear, MASKED, rmsNorm, skipRmsNorm, swiGlu, type Ctx as LayerCtx } from './layers.js'
import { FP32, type EmbeddingPrecision, type Precision } from './precision.js'
import { inMemory } from './tensor-data.js'
import type { CheckpointWeights } from './weights.js'

type Ctx = LayerCtx<CheckpointWeights>

/** Prefix of the LLM's keys in the published checkpoint. */
export const LLM_PREFIX = 'model.model'

export const DECODER_OPSET = 17

/**
 * Which cache outputs the graph declares: `delta` (what the server wants),
 * `present` (the conventional Hugging Face form, whole cache), or both.
 */
export type CacheOutputs = 'delta' | 'present' | 'both'

/**
 * `portable`: standard ONNX operators only (ONNX Runtime fuses the RMSNorms
 * itself). `fused`: ONNX Runtime's contrib kernels where the exported pattern
 * stays unfused: SkipSimplifiedLayerNormalization for each residual Add and the
 * RMSNorm after it, RotaryEmbedding for the rotate-half RoPE.
 */
export const DECODER_OPS = ['fused', 'portable'] as const
export type DecoderOps = (typeof DECODER_OPS)[number]

/** `table` is the shared embedding table (`embeddingTable`), written once beside the graphs. */
export function buildDecoder(
  layerCtx: Ctx,
  arch: Architecture,
  table: SharedWeight,
  cacheOutputs: CacheOutputs = 'delta',
  precision: Precision = FP32,
  ops: DecoderOps = 'portable',
): BuiltGraph {
  const ctx: Ctx = { ...layerCtx, linearPrecision: precision.linear }
  const { g } = ctx
  const { config } = arch
  const { llm, block_size: blockSize } = config
  const blockIds = g.input('block_ids', 'int64', ['batch', 'seq', blockSize])
  const attentionMask = g.input('attention_mask', 'int64', ['batch', 'total'])
  const positionIds = g.input('position_ids', 'int64', ['batch', 'seq'])
  const past = Array.from({ length: llm.num_layers }, (_, i) => ({
    key: g.input(`past_key_values.${i}.key`, 'float32', ['batch', llm.num_key_value_heads, 'past', llm.head_dim]),
    value: g.input(`past_key_values.${i}.value`, 'float32', ['batch', llm.num_key_value_heads, 'past', llm.head_dim]),
  }))

  let x = blockEmbedding(g, config, blockIds, table)
  const bias = attentionBias(g, attentionMask, positionIds)
  const rope =
    ops === 'fused' ? fusedRope(g, positionIds, llm) : ropeTables(g, positionIds, llm.head_dim, llm.rope_theta)
  /** RMSNorm of x + `add` (the sublayer output not yet added), and that sum. */
  const norm = (scaleKey: string, add: string | undefined) => {
    if (ops === 'fused' && add !== undefined)
      return skipRmsNorm(ctx, scaleKey, x, add, llm.hidden_size, llm.rms_norm_eps)
    const sum = add === undefined ? x : g.op('Add', [x, add])
    return { normed: rmsNorm(ctx, scaleKey, sum, llm.hidden_size, llm.rms_norm_eps), sum }
  }
  let mlpOut: string | undefined

  past.forEach((layerPast, i) => {
    const prefix = `${LLM_PREFIX}.layers.${i}`
    const attnIn = norm(`${prefix}.sa_norm.scale`, mlpOut)
    x = attnIn.sum
    const attn = selfAttention(ctx, config, prefix, attnIn.normed, layerPast, bias, rope)
    const mlpIn = norm(`${prefix}.mlp_norm.scale`, attn.output)
    x = mlpIn.sum
    mlpOut = swiGlu(ctx, `${prefix}.mlp`, mlpIn.normed, llm.hidden_size, arch.llmIntermediateSize)
    for (const kind of ['key', 'value'] as const) {
      if (cacheOutputs !== 'delta') {
        const present = g.op('Concat', [layerPast[kind], attn.delta[kind]], { axis: int(2) })
        g.output(`present.${i}.${kind}`, 'float32', ['batch', llm.num_key_value_heads, 'total', llm.head_dim], present)
      }
      if (cacheOutputs !== 'present')
        g.output(
          `present_delta.${i}.${kind}`,
          'float32',
          ['batch', llm.num_key_value_heads, 'seq', llm.head_dim],
          attn.delta[kind],
        )
    }
  })
  if (mlpOut !== undefined) x = g.op('Add', [x, mlpOut])
  g.output('hidden_states', 'float32', ['batch', 'seq', llm.hidden_size], x)
  return g.finish(DECODER_OPSET, 'Kelix LLM decoder over blocks with KV cache')
}

/** Sum of the embedding rows of each block's ids before its first <eob>. */
function blockEmbedding(g: GraphBuilder, config: KelixConfig, blockIds: string, table: SharedWeight): string {
  const rows = embeddingRows(g, table, blockIds)
  const isEob = g.op('Cast', [g.op('Equal', [blockIds, g.ints([config.special_tokens.eob])])], { to: int(7) })
  const beforeFirstEob = g.op('Equal', [g.op('CumSum', [isEob, g.intScalar(-1)]), g.ints([0])])
  const keep = g.op('Unsqueeze', [g.op('Cast', [beforeFirstEob], { to: int(1) }), g.ints([-1])])
  return g.op('ReduceSum', [g.op('Mul', [rows, keep]), g.ints([-2])], { keepdims: int(0) })
}

/** ONNX's element type number of float32 (Cast's `to`). */
const FLOAT = 1

/**
 * The unified embedding table (text then visual ids) as one shared file: the
 * LLM and the block decoder both gather from it, and it is the largest weight
 * they share (217,472 × 4,096 for Kelix). A float16 table halves it.
 */
export function embeddingTable(w: CheckpointWeights, config: KelixConfig, precision: EmbeddingPrecision): SharedWeight {
  const key = `${LLM_PREFIX}.tok_embeddings.embed_tokens.weight`
  const shape = [config.vocab.vocab_size, config.llm.hidden_size]
  const rows = w.tensor(key, shape)
  const file = MODEL_FILES.embeddings
  return precision === 'fp32'
    ? new SharedWeight(file, key, 'float32', rows)
    : new SharedWeight(file, key, 'float16', asFloat16(rows))
}

/** float32 rows of the embedding table for `ids`; a float16 table's gathered rows alone are cast back. */
export function embeddingRows(g: GraphBuilder, table: SharedWeight, ids: string): string {
  const rows = g.op('Gather', [g.sharedWeight(table), ids], { axis: int(0) })
  return table.dtype === 'float32' ? rows : g.op('Cast', [rows], { to: int(FLOAT) })
}

/**
 * [B,1,1,S,T] additive bias: query s (the s-th new block) may see cache slot t
 * when t <= past + s (causal within the chunk) and attention_mask[b,t] is 1.
 */
function attentionBias(g: GraphBuilder, attentionMask: string, positionIds: string): string {
  const total = g.op('Squeeze', [g.op('Shape', [attentionMask], { start: int(1), end: int(2) }), g.ints([0])])
  const seq = g.op('Squeeze', [g.op('Shape', [positionIds], { start: int(1), end: int(2) }), g.ints([0])])
  const pastLength = g.op('Sub', [total, seq])
  const one = g.intScalar(1)
  const keySlots = g.op('Unsqueeze', [g.op('Range', [g.intScalar(0), total, one]), g.ints([0])])
  const querySlots = g.op('Unsqueeze', [g.op('Range', [pastLength, total, one]), g.ints([1])])
  const causal = g.op('LessOrEqual', [keySlots, querySlots])
  const notPadding = g.op('Unsqueeze', [g.op('Cast', [attentionMask], { to: int(9) }), g.ints([1, 2])])
  const allowed = g.op('And', [causal, notPadding])
  return g.op('Unsqueeze', [g.op('Where', [allowed, g.scalar(0), g.scalar(MASKED)]), g.ints([1])])
}

/** cos/sin as the graph applies them: tables to multiply by (portable), or the contrib kernel's caches (fused). */
type Rope =
  | { kind: 'tables'; cos: string; sin: string; width: number }
  | { kind: 'kernel'; positionIds: string; cosCache: string; sinCache: string }

/** cos/sin tables [B,1,S,head_dim] for rotate-half RoPE at each block's position. */
function ropeTables(g: GraphBuilder, positionIds: string, headDim: number, theta: number): Rope {
  const half = headDim / 2
  const inverseFrequency = Float32Array.from({ length: half }, (_, i) => 1 / Math.pow(theta, (2 * i) / headDim))
  const freqs = g.op('Mul', [
    g.op('Unsqueeze', [g.op('Cast', [positionIds], { to: int(1) }), g.ints([-1])]),
    g.floats([...inverseFrequency]),
  ])
  const angles = g.op('Unsqueeze', [g.op('Concat', [freqs, freqs], { axis: int(-1) }), g.ints([1])])
  return { kind: 'tables', cos: g.op('Cos', [angles]), sin: g.op('Sin', [angles]), width: headDim }
}

/** RotaryEmbedding's caches [max_position, head_dim / 2], angles in float64 before rounding to float32. */
function fusedRope(g: GraphBuilder, positionIds: string, llm: KelixConfig['llm']): Rope {
  const half = llm.head_dim / 2
  const positions = llm.max_position_embeddings
  const inverseFrequency = Array.from({ length: half }, (_, i) => 1 / Math.pow(llm.rope_theta, (2 * i) / llm.head_dim))
  const cos = new Float32Array(positions * half)
  const sin = new Float32Array(positions * half)
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * (inverseFrequency[i] as number)
      cos[p * half + i] = Math.cos(angle)
      sin[p * half + i] = Math.sin(angle)
    }
  }
  // Not parameters of the model: 0 in the summary's count.
  const cache = (name: string, values: Float32Array) =>
    g.storedWeight(`${LLM_PREFIX}.rope.${name}`, 'float32', [positions, half], inMemory([positions, half], values), 0)
  return { kind: 'kernel', positionIds, cosCache: cache('cos_cache', cos), sinCache: cache('sin_cache', sin) }
}

/** Rotate-half RoPE on [B,N,S,d]. */
function rotate(g: GraphBuilder, x: string, rope: Rope): string {
  if (rope.kind === 'tables') return applyRope(g, x, rope.cos, rope.sin, rope.width)
  return g.msOp('RotaryEmbedding', [x, rope.positionIds, rope.cosCache, rope.sinCache], { interleaved: int(0) })
}

interface KV {
  key: string
  value: string
}

/**
 * Grouped-query attention without repeating keys or concatenating the cache.
 * Queries [B,Hq,S,d] are viewed as [B,Hkv,rep,S,d] (query head h uses KV head
 * h / rep) and keys and values as [B,Hkv,1,T,d], so the products broadcast
 * over the group without copying:
 *
 *   scores = [q·pastᵀ | q·newᵀ]  → + bias → softmax → p_past·past_v + p_new·new_v
 *
 * At a decode step (S = 1) every product is one query row against one head's
 * cache, which ONNX Runtime's CPU MatMul computes without packing the cache
 * (its M = 1 kernels); with [B,Hkv,rep·S,d] queries it packed each head's
 * cache first, and attention took twice as long at batch 32.
 */
function selfAttention(ctx: Ctx, config: KelixConfig, prefix: string, h: string, past: KV, bias: string, rope: Rope) {
  const { g } = ctx
  const {
    hidden_size: hidden,
    num_attention_heads: qHeads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    rms_norm_eps: eps,
  } = config.llm
  const rep = qHeads / kvHeads
  const heads = (name: string, count: number, norm: boolean) => {
    let t = g.op('Reshape', [
      linear(ctx, `${prefix}.attn.${name}_proj`, h, hidden, count * headDim),
      g.ints([0, 0, count, headDim]),
    ])
    if (norm) t = rmsNorm(ctx, `${prefix}.attn.${name}_norm.scale`, t, headDim, eps)
    return g.op('Transpose', [t], { perm: ints([0, 2, 1, 3]) })
  }
  const q = rotate(g, heads('q', qHeads, true), rope)
  const delta: KV = { key: rotate(g, heads('k', kvHeads, true), rope), value: heads('v', kvHeads, false) }
  const grouped = g.op('Reshape', [
    g.op('Mul', [q, g.scalar(1 / Math.sqrt(headDim))]),
    g.ints([0, kvHeads, rep, -1, headDim]),
  ])
  const perGroup = (t: string) => g.op('Unsqueeze', [t, g.ints([2])])
  const scoresAgainst = (keys: string) =>
    g.op('MatMul', [grouped, g.op('Transpose', [perGroup(keys)], { perm: ints([0, 1, 2, 4, 3]) })])
  const pastSlots = g.op('Shape', [past.key], { start: int(2), end: int(3) })
  // [B,Hkv,rep,S,T]: the [B,1,1,S,T] bias broadcasts over heads.
  const scores = g.op('Concat', [scoresAgainst(past.key), scoresAgainst(delta.key)], { axis: int(-1) })
  const probs = g.op('Softmax', [g.op('Add', [scores, bias])], { axis: int(-1) })
  const total = g.op('Shape', [scores], { start: int(4), end: int(5) })
  const pastProbs = g.op('Slice', [probs, g.ints([0]), pastSlots, g.ints([4])])
  const newProbs = g.op('Slice', [probs, pastSlots, total, g.ints([4])])
  const context = g.op('Add', [
    g.op('MatMul', [pastProbs, perGroup(past.value)]),
    g.op('MatMul', [newProbs, perGroup(delta.value)]),
  ])
  const merged = g.op('Reshape', [
    g.op('Transpose', [g.op('Reshape', [context, g.ints([0, qHeads, -1, headDim])])], { perm: ints([0, 2, 1, 3]) }),
    g.ints([0, 0, qHeads * headDim]),
  ])
  return { output: linear(ctx, `${prefix}.attn.output_proj`, merged, qHeads * headDim, hidden), delta }
}
