/**
 * The LM head (`model.model.output.weight`, stored [vocab_size, hidden]) by
 * vocabulary part (see src/engine/vocab-parts.ts), chosen at run time by the
 * int64 scalar `vocab_part` without copying a weight per call: each part's rows
 * of the head, transposed, are an initializer of that part's own branch, and a
 * binary tree of `If` nodes reaches the one branch that runs.
 *
 *   If(vocab_part < 1)   then: text          else: sub-codebooks 1 … K, halved
 *                                                 If(vocab_part < mid) …, recursively
 *
 * Text (every chat token) passes one If; a sub-codebook 1 + ⌈log₂ K⌉ (4 for
 * Kelix). An If costs a few microseconds on CPU, next to a MatMul of ≥ 512 columns.
 *
 * Why inside the branch rather than in the outer scope: ONNX Runtime pre-packs a
 * MatMul weight only when it is an initializer of the MatMul's own graph. Read
 * from the outer scope, the weight is packed on every call (slower at batch 32)
 * and the sums round differently from the single-MatMul head (about 1e-5).
 *
 * Values outside 0 … K reach an edge leaf; the engine checks the logits' width.
 *
 * A quantized head (int8/int4) is MatMulNBits over each part's rows as stored
 * ([part size, hidden]): the blocks run along the hidden axis, so a part's
 * codes are exactly those rows of the whole head's.
 */
import type { KelixConfig } from '../engine/model-config.js'
import { codebookPart, TEXT_PART, vocabPartRange, type VocabPart } from '../engine/vocab-parts.js'
import { LLM_PREFIX } from './decoder.js'
import { graph, type GraphBuilder } from './graph.js'
import { matMulNBits, type Ctx } from './layers.js'
import { isQuantized, type WeightPrecision } from './precision.js'
import type { CheckpointWeights } from './weights.js'

const LM_HEAD = `${LLM_PREFIX}.output.weight`

/** logits [batch, vocab_size] = x [batch, hidden] @ the whole LM head (the older form, one MatMul). */
export function wholeLmHead(
  ctx: Ctx<CheckpointWeights>,
  config: KelixConfig,
  x: string,
  precision: WeightPrecision = 'fp32',
): string {
  const shape = [config.vocab.vocab_size, config.llm.hidden_size]
  if (isQuantized(precision)) return matMulNBits(ctx.g, x, LM_HEAD, ctx.w.tensor(LM_HEAD, shape), precision)
  return ctx.g.op('MatMul', [
    x,
    ctx.g.weight(LM_HEAD, [shape[1] as number, shape[0] as number], ctx.w.transposed(LM_HEAD, shape)),
  ])
}

/** logits [batch, part size] = x [batch, hidden] @ `part`'s rows of the LM head, transposed. */
export function lmHeadByPart(
  ctx: Ctx<CheckpointWeights>,
  config: KelixConfig,
  x: string,
  part: string,
  precision: WeightPrecision = 'fp32',
): string {
  const { hidden_size: hidden } = config.llm
  const { vocab_size: vocab, num_codebooks: books } = config.vocab
  const leaf = (part: VocabPart, name: string): Leaf => ({
    part,
    emit(g) {
      const [lo, hi] = vocabPartRange(config, part)
      if (isQuantized(precision))
        return matMulNBits(g, x, `${LM_HEAD}.${name}`, ctx.w.rows(LM_HEAD, [vocab, hidden], lo, hi), precision)
      return g.op('MatMul', [
        x,
        g.weight(`${LM_HEAD}.${name}`, [hidden, hi - lo], ctx.w.transposed(LM_HEAD, [vocab, hidden], [lo, hi])),
      ])
    },
  })
  const leaves = [
    leaf(TEXT_PART, 'text'),
    ...Array.from({ length: books }, (_, k) => leaf(codebookPart(k), `codebook_${k}`)),
  ]
  return select(ctx.g, part, leaves, 1)
}

interface Leaf {
  part: VocabPart
  /** Writes the leaf's weight and MatMul into `g`; returns the logits' name. */
  emit(g: GraphBuilder): string
}

/** The leaf whose part equals `part`: an `If` splits the leaves before `mid` from the rest, then each side is halved. */
function select(g: GraphBuilder, part: string, leaves: readonly Leaf[], mid = leaves.length >> 1): string {
  if (leaves.length === 1) return (leaves[0] as Leaf).emit(g)
  const split = (leaves[mid] as Leaf).part
  const branch = (side: readonly Leaf[], name: string) => {
    const sub = g.subgraph(name)
    const logits = select(sub, part, side)
    sub.output(logits, 'float32', ['batch', 'part_vocab'], logits)
    return graph(sub.toGraph())
  }
  const below = g.op('Less', [part, g.intScalar(split)])
  return g.op('If', [below], {
    then_branch: branch(leaves.slice(0, mid), `parts_below_${split}`),
    else_branch: branch(leaves.slice(mid), `parts_from_${split}`),
  })
}
