/**
 * One step being planned: the block budget left, who got how many blocks,
 * and who was preempted. A preempted sequence that already had a share gives
 * its blocks back, so the budget stays exact.
 */
import type { ScheduledSequence, SchedulerOutput } from './types.js'

export class StepPlan {
  private readonly entries = new Map<string, ScheduledSequence>()
  private readonly preemptedIds: string[] = []

  constructor(private remaining: number) {}

  get budget(): number {
    return this.remaining
  }

  get hasPreemptions(): boolean {
    return this.preemptedIds.length > 0
  }

  add(id: string, numBlocks: number, isPrefill: boolean, cachedBlocks = 0): void {
    this.entries.set(id, { id, numBlocks, isPrefill, ...(cachedBlocks > 0 ? { cachedBlocks } : {}) })
    this.remaining -= numBlocks
  }

  preempt(id: string): void {
    const entry = this.entries.get(id)
    if (entry !== undefined) {
      this.entries.delete(id)
      this.remaining += entry.numBlocks
    }
    this.preemptedIds.push(id)
  }

  /** Blocks scheduled per id, kept to check the step's results against. */
  shares(): Map<string, number> {
    return new Map([...this.entries.values()].map((e) => [e.id, e.numBlocks]))
  }

  output(): SchedulerOutput {
    const scheduled = [...this.entries.values()]
    const numBatchedBlocks = scheduled.reduce((sum, e) => sum + e.numBlocks, 0)
    return { scheduled, preempted: [...this.preemptedIds], numBatchedBlocks }
  }
}
