/**
 * Next-Block Prediction for a batch: block_decoder.onnx micro-steps, one slot
 * per call, every row still building its block in the same call. A row leaves
 * the loop when it picks <eob>, when its chooser declares the block complete,
 * or at the last slot (which is <eob> by definition).
 *
 *   slot 0: rows A B C D  → A picks a text token (complete), B C D continue
 *   slot 1: rows B C D    → …
 *
 * Each row samples in one vocabulary part per slot (vocab-parts.ts). A graph
 * with `vocab_part` computes only that part, so a micro-step makes one call
 * per part its rows want (usually one); an older graph computes every id in
 * one call and each row reads its part out of the whole row.
 */
import ort from 'onnxruntime-node'
import { MODEL_FILES } from '../graph-signatures.js'
import type { KelixModel } from '../model.js'
import { TEXT_PART, vocabPartRange, type VocabPart } from '../vocab-parts.js'
import { KelixError } from '../../errors/kelix-error.js'

/** One row's logits over a vocabulary part: `values[i]` is the logit of id `firstId + i`. */
export interface PartLogits {
  values: Float32Array
  firstId: number
}

/** Decides one row's ids, slot by slot. */
export interface SlotChooser {
  /** The vocabulary part `slot` samples from, given the ids chosen before it in this block. */
  vocabPart(slot: number, chosen: readonly number[]): VocabPart
  /**
   * Picks the id for `slot`, given the ids chosen before it in this block and
   * the logits of the part `vocabPart` named (a view the chooser may modify in
   * place). Returns the id, and whether the block is complete after it.
   */
  choose(slot: number, chosen: readonly number[], logits: PartLogits): { id: number; complete: boolean }
  /** A block known without the model (a grammar's forced text id): no block-decoder call for it. */
  forcedId?(): number | undefined
}

type Timings = { blockDecoderMs: number; samplingMs: number }

/** What one block-decoder call computes: one vocabulary part, or every id (a graph without `vocab_part`). */
type CallPart = VocabPart | 'whole'

/** Returns, per row, the ids of its new block before <eob> (at least one). */
export async function decodeBlocks(
  model: KelixModel,
  lastHidden: Float32Array,
  choosers: readonly SlotChooser[],
  timings: Timings,
): Promise<number[][]> {
  const { eob } = model.config.special_tokens
  const hidden = model.config.llm.hidden_size
  const chosen: number[][] = choosers.map(() => [])
  let active = choosers
    .map((_, i) => i)
    .filter((row) => {
      const forced = (choosers[row] as SlotChooser).forcedId?.()
      if (forced !== undefined) (chosen[row] as number[]).push(forced)
      return forced === undefined
    })
  for (let slot = 0; slot < model.config.block_size - 1 && active.length > 0; slot++) {
    const parts = new Map(
      active.map((row) => [row, (choosers[row] as SlotChooser).vocabPart(slot, chosen[row] as number[])]),
    )
    const going = new Set<number>()
    for (const [part, rows] of groupByCall(model, active, parts)) {
      const runStart = performance.now()
      const inputs = rows.map((row) => ({
        hidden: lastHidden.subarray(row * hidden, (row + 1) * hidden),
        chosen: chosen[row] as number[],
      }))
      const logits = await runSlot(model, part, slot, inputs)
      const sampleStart = performance.now()
      timings.blockDecoderMs += sampleStart - runStart
      rows.forEach((row, a) => {
        const block = chosen[row] as number[]
        const rowLogits = logits.row(a, vocabPartRange(model.config, parts.get(row) as VocabPart))
        const { id, complete } = (choosers[row] as SlotChooser).choose(slot, block, rowLogits)
        if (id === eob) return
        block.push(id)
        if (!complete) going.add(row)
      })
      timings.samplingMs += performance.now() - sampleStart
    }
    active = active.filter((row) => going.has(row))
  }
  return chosen
}

/** Hidden states per call when scoring: one text-part logits row is 151,936 floats at Kelix's size. */
const SCORE_ROWS = 64

/**
 * What the model predicts as the next text token after each of `count`
 * hidden states (slot 0 of a new block, the text part): `each(a, logits)` is
 * called per state in order, with a view it may modify.
 */
export async function nextTextLogits(
  model: KelixModel,
  states: Float32Array,
  count: number,
  each: (a: number, logits: PartLogits) => void,
): Promise<void> {
  const hidden = model.config.llm.hidden_size
  const part: CallPart = model.blockDecoderHasParts ? TEXT_PART : 'whole'
  const text = vocabPartRange(model.config, TEXT_PART)
  for (let from = 0; from < count; from += SCORE_ROWS) {
    const rows = Array.from({ length: Math.min(SCORE_ROWS, count - from) }, (_, a) => ({
      hidden: states.subarray((from + a) * hidden, (from + a + 1) * hidden),
      chosen: [],
    }))
    const logits = await runSlot(model, part, 0, rows)
    rows.forEach((_, a) => each(from + a, logits.row(a, text)))
  }
}

/** Rows grouped by call: one call per part the rows want, or a single whole-vocabulary call for a graph without `vocab_part`. */
function groupByCall(
  model: KelixModel,
  active: readonly number[],
  parts: ReadonlyMap<number, VocabPart>,
): Map<CallPart, number[]> {
  const calls = new Map<CallPart, number[]>()
  for (const row of active) {
    const call = model.blockDecoderHasParts ? (parts.get(row) as VocabPart) : 'whole'
    const rows = calls.get(call)
    if (rows === undefined) calls.set(call, [row])
    else rows.push(row)
  }
  return calls
}

/** The logits of one call: `width` per row, for the ids from `firstId`. */
class CallLogits {
  constructor(
    private readonly values: Float32Array,
    private readonly width: number,
    private readonly firstId: number,
  ) {}

  /** Row `a`'s logits of the ids `[lo, hi)` (inside what the call computed). */
  row(a: number, [lo, hi]: readonly [number, number]): PartLogits {
    const start = a * this.width - this.firstId
    return { values: this.values.subarray(start + lo, start + hi), firstId: lo }
  }
}

/** One block_decoder.onnx call at `slot` for rows that each have the `slot` ids of their block so far. */
async function runSlot(
  model: KelixModel,
  part: CallPart,
  slot: number,
  rows: ReadonlyArray<{ hidden: Float32Array; chosen: readonly number[] }>,
): Promise<CallLogits> {
  const { hidden_size: hidden } = model.config.llm
  const states = new Float32Array(rows.length * hidden)
  const ids = new BigInt64Array(rows.length * slot)
  rows.forEach((row, a) => {
    states.set(row.hidden, a * hidden)
    row.chosen.forEach((id, j) => (ids[a * slot + j] = BigInt(id)))
  })
  const out = await model.blockDecoder.run({
    hidden_state: new ort.Tensor('float32', states, [rows.length, hidden]),
    block_ids: new ort.Tensor('int64', ids, [rows.length, slot]),
    ...(part === 'whole' ? {} : { vocab_part: new ort.Tensor('int64', BigInt64Array.of(BigInt(part)), []) }),
  })
  const logits = out.logits as ort.Tensor
  const [lo, hi] = part === 'whole' ? [0, model.config.vocab.vocab_size] : vocabPartRange(model.config, part)
  // Logits of another size than the part's would be read misaligned: say so instead.
  if (logits.dims[1] !== hi - lo)
    throw new KelixError(
      'MODEL_GRAPH_MISMATCH',
      `logits of vocab_part ${part} have ${logits.dims[1]} ids per row, expected ${hi - lo}`,
      { file: MODEL_FILES.blockDecoder },
    )
  return new CallLogits(logits.data as Float32Array, hi - lo, lo)
}
