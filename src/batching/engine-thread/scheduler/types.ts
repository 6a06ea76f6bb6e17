/**
 * The scheduler's nouns. Plain data only: the engine loop feeds requests and
 * step results in, and reads step plans and sequence views out.
 *
 * Units: one LLM position is one Kelix block (up to 9 ids), so "tokens",
 * "blocks" and "positions" below all count the same thing.
 */

/**
 * Every status a sequence can hold, in lifecycle order. Everything after
 * `preempted` is terminal: a sequence reaches exactly one of them, once.
 */
export const SEQUENCE_STATUSES = [
  'waiting',
  'running',
  'preempted',
  'finished_stop',
  'finished_length',
  'finished_abort',
  'finished_error',
  'finished_timeout',
] as const

export type SequenceStatus = (typeof SEQUENCE_STATUSES)[number]

/** Why a sequence ended; its terminal status is `finished_${reason}`. */
export type FinishReason = 'stop' | 'length' | 'abort' | 'error' | 'timeout'

export type FinishedStatus = `finished_${FinishReason}`

const FIRST_TERMINAL = SEQUENCE_STATUSES.indexOf('finished_stop')

export function isFinished(status: SequenceStatus): status is FinishedStatus {
  return SEQUENCE_STATUSES.indexOf(status) >= FIRST_TERMINAL
}

/** Limits of one scheduler. All are positive integers. */
export interface SchedulerConfig {
  /** Most sequences running (holding KV) at once, like vLLM's `max_num_seqs`. */
  maxNumSeqs: number
  /**
   * Most blocks processed in one step, decodes and prefill chunks together,
   * like vLLM's `max_num_batched_tokens`. Must be at least `maxNumSeqs`, so
   * that every running decode always fits.
   */
  maxBatchedTokens: number
  /** KV cache capacity in positions, over all sequences. */
  kvCapacity: number
  /** KV is allocated in pages of this many positions per sequence. */
  pageSize: number
  /** Longest sequence (prompt + generated) in positions; one such sequence must fit the KV alone. */
  maxModelLength: number
}

/** A request as the scheduler sees it: lengths only, no ids or images. */
export interface SchedulerRequest {
  /** Unique among the sequences the scheduler still knows. */
  id: string
  /** Prompt blocks, at least 1. */
  promptLength: number
  /** Blocks to generate at most; `promptLength + maxNewTokens <= maxModelLength`. 0: the prompt alone (scored), the engine ends it. */
  maxNewTokens: number
  /** Higher runs first. Default 0. */
  priority?: number
  /** When the request arrived, in the caller's clock (ms); FCFS order within a priority. */
  arrivalTime: number
  /** Longest wait before first being scheduled, in ms; undefined: no limit. */
  queueTimeoutMs?: number
  /** Absolute time (same clock as `arrivalTime`) by which the request must end; undefined: none. */
  deadline?: number
  /**
   * A sequence with the same prompt (another choice of one request) whose
   * prompt this one waits for: it is admitted only once that sequence has
   * computed its prompt (or ended), so it can take the prompt from the prefix
   * cache instead of computing it again.
   */
  promptFrom?: string
}

/** One sequence's share of a step. */
export interface ScheduledSequence {
  id: string
  /** Blocks to compute this step, after the cached ones. */
  numBlocks: number
  /**
   * Blocks to fill from the engine's prefix cache before computing, on a
   * sequence's first step after admission (as `prefixHit` reported); else 0.
   */
  cachedBlocks?: number
  /** False only for a decode: exactly one block, the last generated one. */
  isPrefill: boolean
}

/** What the engine runs in one step. */
export interface SchedulerOutput {
  /** Decodes first, then prefill chunks, in the order they were chosen. */
  scheduled: ScheduledSequence[]
  /** Sequences that lost their KV in this step; the engine drops their cache. */
  preempted: string[]
  /** Sum of `numBlocks`; never more than `maxBatchedTokens`. */
  numBatchedBlocks: number
}

/** What the engine reports for one scheduled sequence after running a step. */
export interface StepResult {
  id: string
  /** Blocks actually computed; default: all the blocks scheduled. */
  numComputedDelta?: number
  /** A next block was sampled; only allowed once every known block is computed. */
  sampled: boolean
  /** Set when the sequence ended in this step. */
  finished?: 'stop' | 'length' | 'abort' | 'error'
}

/** A read-only snapshot of one sequence. */
export interface SequenceView {
  id: string
  status: SequenceStatus
  priority: number
  arrivalTime: number
  promptLength: number
  maxNewTokens: number
  /** Blocks known: prompt plus generated. */
  numTokens: number
  /** Blocks already in the KV cache. */
  numComputed: number
  /** `numTokens - promptLength`. */
  numGenerated: number
  /** Times this sequence lost its KV and went back to waiting. */
  numPreemptions: number
}
