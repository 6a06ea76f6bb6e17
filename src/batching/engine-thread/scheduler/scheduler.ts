/**
 * Continuous-batching scheduler in the shape of vLLM v1: pure and synchronous.
 * The engine loop is `schedule()` -> run the model -> `update(results)`.
 *
 * Sequence lifecycle:
 *
 *        add()
 *          |
 *          v
 *     +---------+   schedule(): admitted    +---------+   update(): stop | length | error
 *     | waiting | ------------------------> | running | ----------------------------------+
 *     +---------+   (KV holds first chunk)  +---------+                                   |
 *                                            |     ^                                      v
 *          schedule(): KV short, this is the |     | schedule(): readmitted     +-------------------+
 *          last running sequence: KV freed,  v     | (full recompute)           | finished_<reason> |
 *          numComputed = 0, sorted back  +-----------+                          +-------------------+
 *          into waiting at the front of  | preempted |                                    ^
 *          its priority                  +-----------+                                    |
 *                                                                                         |
 *     abort(id): waiting | preempted | running ---------------------> finished_abort -----+
 *     expire(now): past deadline, or never scheduled and past queue timeout -> finished_timeout
 *
 *   Every terminal transition frees the sequence's KV, once.
 *
 * Policy per step, within `maxBatchedTokens` blocks:
 *   1. every running decode, 1 block each, oldest first;
 *   2. running sequences still mid-prefill (or recomputing), one chunk each;
 *   3. waiting sequences from the front of the queue, while fewer than
 *      `maxNumSeqs` run and the KV holds their first chunk; skipped in a step
 *      that preempted, so freed pages are not refilled only to thrash.
 * When a running sequence cannot grow its KV, the last running sequence in
 * (priority, arrival) order is preempted (lowest priority, then newest),
 * until it fits or it is the one preempted.
 *
 * A sequence added with `promptFrom` (choice k > 0 of a request) is not
 * admitted before that sibling has computed the shared prompt, so it takes the
 * prompt from the engine's prefix cache instead of computing it again.
 *
 * Anti-starvation: admission is strictly head-of-line. When the front of the
 * queue cannot be admitted (no seat, or the KV cannot hold its chunk),
 * nothing behind it is, so a later prompt of the same or lower priority never
 * overtakes it, however short; only higher priorities go ahead (no aging).
 * A chunk shrinks to the budget left, so the budget never blocks the head.
 * Once admitted it is mid-prefill, served in pass 2 before any waiting
 * sequence, and since `maxBatchedTokens >= maxNumSeqs` at least one block is
 * left for it after the other decodes: it advances every step, unless an
 * older or higher-priority running sequence needs its pages.
 */
import { reachedLength } from '../../../engine/context-length.js'
import { expiredInQueue, deadlinePassed } from './deadlines.js'
import { KvAccounting, type KvView } from './kv-accounting.js'
import { OrderedList } from './order.js'
import { isDecode, newSequence, validateConfig, viewOf, type Sequence } from './sequence.js'
import { StepPlan } from './step-plan.js'
import { checkResults, type CheckedResult } from './step-results.js'
import {
  isFinished,
  type FinishReason,
  type SchedulerConfig,
  type SchedulerOutput,
  type SchedulerRequest,
  type SequenceView,
  type StepResult,
} from './types.js'
import { KelixError } from '../../../errors/kelix-error.js'

export interface SchedulerOptions {
  /** The capacity ledger to use; default: a new one from `kvCapacity` and `pageSize`. */
  kv?: KvAccounting
  /**
   * Prompt blocks of a sequence about to be admitted that the engine's prefix
   * cache already holds; they count as computed. Default: none.
   */
  prefixHit?: (id: string) => number
}

/**
 * Plans engine steps. Call `takeFinished()` after each `update()` (or
 * `abort()`, `expire()`): ended sequences stay readable through `get()` and
 * keep their id taken until then.
 */
export class Scheduler {
  readonly config: Readonly<SchedulerConfig>
  private readonly accounting: KvAccounting
  private readonly prefixHit: (id: string) => number
  private readonly sequences = new Map<string, Sequence>()
  private readonly waiting = new OrderedList<Sequence>()
  private readonly running = new OrderedList<Sequence>()
  private finishedSinceTaken: Sequence[] = []
  private inFlight: ReadonlyMap<string, number> = new Map()
  private added = 0

  /** @throws KelixError INVALID_CONFIG naming the bad option. */
  constructor(config: SchedulerConfig, options: SchedulerOptions = {}) {
    this.config = validateConfig(config)
    this.accounting = options.kv ?? new KvAccounting({ capacity: config.kvCapacity, pageSize: config.pageSize })
    this.prefixHit = options.prefixHit ?? (() => 0)
    const pages = Math.floor(config.kvCapacity / config.pageSize)
    if (this.accounting.pageSize !== config.pageSize || this.accounting.totalPages !== pages) {
      throw new KelixError('SCHEDULER_CONFIG_INVALID', `the kv ledger does not match kvCapacity and pageSize`)
    }
  }

  /** The KV ledger, read-only. */
  get kv(): KvView {
    return this.accounting
  }

  get numRunning(): number {
    return this.running.length
  }

  /** Waiting sequences, preempted ones included. */
  get numWaiting(): number {
    return this.waiting.length
  }

  /** Blocks the waiting queue must prefill: prompts, plus generated blocks of preempted sequences. */
  get waitingTokens(): number {
    let sum = 0
    for (const seq of this.waiting) sum += seq.numTokens - seq.numComputed
    return sum
  }

  /** Pages in use over total pages, 0..1. */
  kvUsage(): number {
    return this.accounting.usage()
  }

  /** Whether any sequence waits or runs. */
  hasWork(): boolean {
    return this.running.length + this.waiting.length > 0
  }

  /** A snapshot of a sequence, finished ones included until `takeFinished()`. */
  get(id: string): SequenceView | undefined {
    const seq = this.sequences.get(id)
    return seq === undefined ? undefined : viewOf(seq)
  }

  /**
   * Queues a request as 'waiting'.
   * @throws KelixError DUPLICATE_ID or INVALID_REQUEST.
   */
  add(req: SchedulerRequest): void {
    if (this.sequences.has(req.id)) throw new KelixError('SCHEDULER_DUPLICATE_ID', req.id)
    const seq = newSequence(req, this.added, this.config.maxModelLength)
    this.added += 1
    this.sequences.set(seq.id, seq)
    this.waiting.insert(seq)
  }

  /**
   * Plans the next step. Every step planned with work must be followed by
   * `update()` before the next `schedule()`.
   * @throws KelixError STEP_IN_FLIGHT.
   */
  schedule(): SchedulerOutput {
    if (this.inFlight.size > 0)
      throw new KelixError('SCHEDULER_STEP_IN_FLIGHT', `${this.inFlight.size} sequences await update()`)
    const plan = new StepPlan(this.config.maxBatchedTokens)
    this.scheduleRunning(plan, true)
    this.scheduleRunning(plan, false)
    if (!plan.hasPreemptions) this.admitWaiting(plan)
    this.inFlight = plan.shares()
    return plan.output()
  }

  /**
   * Applies the results of the last step; returns the ids that finished in it.
   * A sequence that reaches `maxNewTokens` finishes with 'length' even when
   * the engine does not say so.
   * @throws KelixError UPDATE_MISMATCH, before changing anything.
   */
  update(results: readonly StepResult[]): string[] {
    const checked = checkResults(results, this.inFlight, (id) => this.sequences.get(id))
    this.inFlight = new Map()
    const ended: string[] = []
    for (const result of checked) {
      if (this.apply(result)) ended.push(result.seq.id)
    }
    return ended
  }

  /**
   * Ends a waiting, preempted or running sequence with 'finished_abort' and
   * frees its KV now; a result for it from a step in flight is dropped.
   * Returns false, changing nothing, for an unknown or finished id.
   */
  abort(id: string): boolean {
    const seq = this.sequences.get(id)
    if (seq === undefined || isFinished(seq.status)) return false
    this.finish(seq, 'abort')
    return true
  }

  /**
   * Ends with 'finished_timeout' every sequence past its deadline, and every
   * sequence never yet scheduled past its queue timeout. Returns their ids.
   */
  expire(now: number): string[] {
    const expired: string[] = []
    for (const seq of [...this.waiting.snapshot(), ...this.running.snapshot()]) {
      const queued = seq.status === 'waiting' && expiredInQueue(now, seq.arrivalTime, seq.queueTimeoutMs)
      if (queued || deadlinePassed(now, seq.deadline)) {
        this.finish(seq, 'timeout')
        expired.push(seq.id)
      }
    }
    return expired
  }

  /** The sequences that ended since the last call, which the scheduler then forgets. */
  takeFinished(): SequenceView[] {
    const taken = this.finishedSinceTaken
    this.finishedSinceTaken = []
    for (const seq of taken) this.sequences.delete(seq.id)
    return taken.map(viewOf)
  }

  /** Pass 1 (`decodes`) or pass 2 (mid-prefill) over the running sequences, oldest first. */
  private scheduleRunning(plan: StepPlan, decodes: boolean): void {
    for (const seq of this.running.snapshot()) {
      if (plan.budget === 0) return
      if (seq.status !== 'running' || isDecode(seq) !== decodes) continue
      const numBlocks = Math.min(seq.numTokens - seq.numComputed, plan.budget)
      if (this.growKv(seq, seq.numComputed + numBlocks, plan)) plan.add(seq.id, numBlocks, !decodes)
    }
  }

  /** Strictly head-of-line: stops at the first sequence that cannot start. */
  private admitWaiting(plan: StepPlan): void {
    while (plan.budget > 0 && this.running.length < this.config.maxNumSeqs) {
      const seq = this.waiting.first()
      if (seq === undefined || this.awaitsPrompt(seq)) return
      // Cached blocks cost KV but no budget: they are copied, not computed. One block is always left to compute.
      const cached = seq.numComputed === 0 ? Math.min(this.prefixHit(seq.id), seq.numTokens - 1) : 0
      const numBlocks = Math.min(seq.numTokens - cached, plan.budget)
      if (!this.accounting.canAllocate(seq.id, cached + numBlocks)) return
      this.accounting.allocate(seq.id, cached + numBlocks)
      this.waiting.remove(seq)
      seq.status = 'running'
      seq.numComputed = cached
      this.running.insert(seq)
      plan.add(seq.id, numBlocks, true, cached)
    }
  }

  /** Whether `seq` waits for the sequence it shares its prompt with to compute it (head-of-line, like any admission wait). */
  private awaitsPrompt(seq: Sequence): boolean {
    if (seq.numComputed > 0 || seq.promptFrom === undefined) return false
    const source = this.sequences.get(seq.promptFrom)
    return source !== undefined && !isFinished(source.status) && source.numComputed < source.promptLength
  }

  /** Grows `seq` to `positions`, preempting from the back; false when `seq` itself was preempted. */
  private growKv(seq: Sequence, positions: number, plan: StepPlan): boolean {
    while (!this.accounting.canAllocate(seq.id, positions)) {
      // `seq` is running, so the list is never empty here.
      const victim = this.running.last() as Sequence
      this.preempt(victim, plan)
      if (victim === seq) return false
    }
    this.accounting.allocate(seq.id, positions)
    return true
  }

  private preempt(seq: Sequence, plan: StepPlan): void {
    this.running.remove(seq)
    this.accounting.free(seq.id)
    seq.numComputed = 0
    seq.numPreemptions += 1
    seq.status = 'preempted'
    this.waiting.insert(seq)
    plan.preempt(seq.id)
  }

  /** Returns whether the sequence ended. */
  private apply({ seq, delta, sampled, finished }: CheckedResult): boolean {
    seq.numComputed += delta
    if (sampled) seq.numTokens += 1
    // The length stop is checked after a sample; with no tokens to generate the engine ends the sequence once its prompt is computed.
    const reason =
      finished ??
      (sampled &&
      reachedLength(seq.numTokens - seq.promptLength, seq.maxNewTokens, seq.numTokens, this.config.maxModelLength)
        ? 'length'
        : undefined)
    if (reason === undefined) return false
    this.finish(seq, reason)
    return true
  }

  /** The one way out: records the terminal status and frees the KV, once. */
  private finish(seq: Sequence, reason: FinishReason): void {
    if (seq.status === 'running') this.running.remove(seq)
    else this.waiting.remove(seq)
    this.accounting.free(seq.id)
    seq.status = `finished_${reason}`
    this.finishedSinceTaken.push(seq)
  }
}
