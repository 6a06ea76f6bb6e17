/**
 * A sequence's mutable state inside the scheduler, and the checks that turn
 * a config or a request into one. Only the scheduler mutates these.
 */
import { requireInteger } from '../../require-integer.js'
import { fitsContext } from '../../../engine/context-length.js'
import { limitsProblem } from '../../limits.js'
import type { Ordered } from './order.js'
import type { SchedulerConfig, SchedulerRequest, SequenceStatus, SequenceView } from './types.js'
import { KelixError } from '../../../errors/kelix-error.js'

export interface Sequence extends Ordered {
  readonly id: string
  readonly promptLength: number
  readonly maxNewTokens: number
  readonly queueTimeoutMs: number | undefined
  readonly deadline: number | undefined
  readonly promptFrom: string | undefined
  status: SequenceStatus
  numTokens: number
  numComputed: number
  numPreemptions: number
}

/** A decode is one block, the last generated one, with everything before it cached. */
export function isDecode(seq: Sequence): boolean {
  return seq.numTokens > seq.promptLength && seq.numComputed === seq.numTokens - 1
}

export function viewOf(seq: Sequence): SequenceView {
  return {
    id: seq.id,
    status: seq.status,
    priority: seq.priority,
    arrivalTime: seq.arrivalTime,
    promptLength: seq.promptLength,
    maxNewTokens: seq.maxNewTokens,
    numTokens: seq.numTokens,
    numComputed: seq.numComputed,
    numGenerated: seq.numTokens - seq.promptLength,
    numPreemptions: seq.numPreemptions,
  }
}

/** Fails at start-up, naming the bad option, rather than livelocking later. */
export function validateConfig(config: SchedulerConfig): SchedulerConfig {
  for (const name of ['maxNumSeqs', 'maxBatchedTokens', 'kvCapacity', 'pageSize', 'maxModelLength'] as const) {
    requireInteger(name, config[name], 1)
  }
  const problem = limitsProblem(config, config.maxModelLength, { context: 'maxModelLength' })
  if (problem !== undefined) throw new KelixError('SCHEDULER_CONFIG_INVALID', problem)
  return { ...config }
}

export function newSequence(req: SchedulerRequest, order: number, maxModelLength: number): Sequence {
  const where = `request ${req.id}`
  if (!Number.isInteger(req.promptLength) || req.promptLength < 1) {
    throw new KelixError(
      'SCHEDULER_REQUEST_INVALID',
      `${where}: promptLength must be an integer >= 1, got ${req.promptLength}`,
    )
  }
  if (!Number.isInteger(req.maxNewTokens) || req.maxNewTokens < 0) {
    throw new KelixError(
      'SCHEDULER_REQUEST_INVALID',
      `${where}: maxNewTokens must be an integer >= 0, got ${req.maxNewTokens}`,
    )
  }
  if (!fitsContext(req.promptLength, req.maxNewTokens, maxModelLength)) {
    throw new KelixError(
      'SCHEDULER_REQUEST_INVALID',
      `${where}: promptLength + maxNewTokens exceeds maxModelLength (${maxModelLength})`,
    )
  }
  return {
    id: req.id,
    promptLength: req.promptLength,
    maxNewTokens: req.maxNewTokens,
    priority: req.priority ?? 0,
    arrivalTime: req.arrivalTime,
    order,
    queueTimeoutMs: req.queueTimeoutMs,
    deadline: req.deadline,
    promptFrom: req.promptFrom,
    status: 'waiting',
    numTokens: req.promptLength,
    numComputed: 0,
    numPreemptions: 0,
  }
}
