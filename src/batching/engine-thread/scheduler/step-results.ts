/**
 * Checks a step's results against the step before anything changes, so a
 * bad report throws and leaves the scheduler as it was.
 */
import type { Sequence } from './sequence.js'
import type { StepResult } from './types.js'
import { KelixError } from '../../../errors/kelix-error.js'

/** One checked result, ready to apply. */
export interface CheckedResult {
  seq: Sequence
  delta: number
  sampled: boolean
  finished: StepResult['finished']
}

/**
 * Every result must name a sequence of the last step, once; every sequence of
 * the last step that is still running must have a result. Results for
 * sequences aborted or expired while the step ran are dropped.
 */
export function checkResults(
  results: readonly StepResult[],
  shares: ReadonlyMap<string, number>,
  lookup: (id: string) => Sequence | undefined,
): CheckedResult[] {
  const seen = new Set<string>()
  const checked: CheckedResult[] = []
  for (const result of results) {
    const share = shares.get(result.id)
    if (share === undefined || seen.has(result.id)) {
      throw new KelixError('SCHEDULER_UPDATE_MISMATCH', `${result.id} is not in the last step, or is reported twice`)
    }
    seen.add(result.id)
    const seq = lookup(result.id)
    if (seq?.status === 'running') checked.push(checkOne(seq, result, share))
  }
  for (const id of shares.keys()) {
    if (!seen.has(id) && lookup(id)?.status === 'running') {
      throw new KelixError('SCHEDULER_UPDATE_MISMATCH', `no result for ${id}`)
    }
  }
  return checked
}

function checkOne(seq: Sequence, result: StepResult, share: number): CheckedResult {
  const delta = result.numComputedDelta ?? share
  if (!Number.isInteger(delta) || delta < 0 || delta > share) {
    throw new KelixError('SCHEDULER_UPDATE_MISMATCH', `${seq.id}: numComputedDelta ${delta} is outside 0..${share}`)
  }
  const computed = seq.numComputed + delta
  if (result.sampled && computed !== seq.numTokens) {
    throw new KelixError(
      'SCHEDULER_UPDATE_MISMATCH',
      `${seq.id} sampled with ${seq.numTokens - computed} blocks not computed`,
    )
  }
  // Without a sample or an end it would never be scheduled again.
  if (!result.sampled && result.finished === undefined && computed === seq.numTokens) {
    throw new KelixError('SCHEDULER_UPDATE_MISMATCH', `${seq.id} computed every block but sampled nothing`)
  }
  return { seq, delta, sampled: result.sampled, finished: result.finished }
}
