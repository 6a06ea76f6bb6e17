/**
 * Next-Block Prediction for a batch: block_decoder.onnx micro-steps, one slot
 * per call, every row still building its block in the same call. A row leaves
 * the loop when it picks <eob>, when its chooser declares the block complete,
 * or at the last slot (which is <eob> by definition).
 *
 *   slot 0: rows A B C D  → A picks a text token (complete), B C D continue
 *   slot 1: rows B C D    → …
 */
import ort from 'onnxruntime-node'
import type { KelixModel } from '../model.js'

/** Decides one row's ids, slot by slot. */
export interface SlotChooser {
  /**
   * Picks the id for `slot`, given the ids chosen before it in this block and
   * the block decoder's logits (a view the chooser may modify in place).
   * Returns the id, and whether the block is complete after it.
   */
  choose(slot: number, chosen: readonly number[], logits: Float32Array): { id: number; complete: boolean }
  /** A block known without the model (a grammar's forced text id): no block-decoder call for it. */
  forcedId?(): number | undefined
}

/** Returns, per row, the ids of its new block before <eob> (at least one). */
export async function decodeBlocks(
  model: KelixModel,
  lastHidden: Float32Array,
  choosers: readonly SlotChooser[],
  timings: { blockDecoderMs: number; samplingMs: number },
): Promise<number[][]> {
  const { hidden_size: hidden } = model.config.llm
  const { eob } = model.config.special_tokens
  const vocab = model.config.vocab.vocab_size
  const chosen: number[][] = choosers.map(() => [])
  let active = choosers.map((_, i) => i).filter((row) => {
    const forced = (choosers[row] as SlotChooser).forcedId?.()
    if (forced !== undefined) (chosen[row] as number[]).push(forced)
    return forced === undefined
  })
  for (let slot = 0; slot < model.config.block_size - 1 && active.length > 0; slot++) {
    const states = new Float32Array(active.length * hidden)
    const ids = new BigInt64Array(active.length * slot)
    active.forEach((row, a) => {
      states.set(lastHidden.subarray(row * hidden, (row + 1) * hidden), a * hidden)
      ;(chosen[row] as number[]).forEach((id, j) => (ids[a * slot + j] = BigInt(id)))
    })
    const runStart = performance.now()
    const out = await model.blockDecoder.run({
      hidden_state: new ort.Tensor('float32', states, [active.length, hidden]),
      block_ids: new ort.Tensor('int64', ids, [active.length, slot]),
    })
    const logits = (out.logits as ort.Tensor).data as Float32Array
    const sampleStart = performance.now()
    timings.blockDecoderMs += sampleStart - runStart
    active = active.filter((row, a) => {
      const block = chosen[row] as number[]
      const { id, complete } = (choosers[row] as SlotChooser).choose(slot, block, logits.subarray(a * vocab, (a + 1) * vocab))
      if (id === eob) return false
      block.push(id)
      return !complete
    })
    timings.samplingMs += performance.now() - sampleStart
  }
  return chosen
}
