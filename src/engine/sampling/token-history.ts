/**
 * What one sequence has seen so far, in the two shapes the penalties need:
 *
 * - generated ids with their counts (OpenAI presence and frequency penalties look at output only);
 * - the set of prompt and generated ids (the CTRL/HF repetition penalty looks at both).
 *
 * Distinct ids are kept in arrays as well as in a map or set, so the sampler walks them with an
 * index loop (no iterator objects per token) and touches only ids that occurred, never the vocabulary.
 */
export class TokenHistory {
  private readonly generatedSlot = new Map<number, number>()
  private readonly generated: number[] = []
  private readonly counts: number[] = []
  private readonly seenSet = new Set<number>()
  private readonly seen: number[] = []

  /** A history that starts with the prompt's ids (they count as seen, not as generated). */
  constructor(promptIds: Iterable<number> = []) {
    for (const id of promptIds) this.see(id)
  }

  /** Records one prompt id: seen by the repetition penalty, not counted as generated. O(1). */
  addPrompt(id: number): void {
    this.see(id)
  }

  /** Records one generated id. O(1) amortised. */
  add(id: number): void {
    const slot = this.generatedSlot.get(id)
    if (slot === undefined) {
      this.generatedSlot.set(id, this.generated.length)
      this.generated.push(id)
      this.counts.push(1)
    } else {
      this.counts[slot] = (this.counts[slot] ?? 0) + 1
    }
    this.see(id)
  }

  /** How many times `id` was generated. */
  count(id: number): number {
    const slot = this.generatedSlot.get(id)
    return slot === undefined ? 0 : (this.counts[slot] ?? 0)
  }

  /** Whether `id` occurs in the prompt or the output. */
  has(id: number): boolean {
    return this.seenSet.has(id)
  }

  /** How many distinct ids were generated; index them with `generatedId` and `generatedCount`. */
  get generatedSize(): number {
    return this.generated.length
  }

  /** The `i`-th distinct generated id, in order of first appearance. */
  generatedId(i: number): number {
    return this.generated[i] ?? -1
  }

  /** How many times the `i`-th distinct generated id was generated. */
  generatedCount(i: number): number {
    return this.counts[i] ?? 0
  }

  /** How many distinct ids the prompt and output hold; index them with `seenId`. */
  get seenSize(): number {
    return this.seen.length
  }

  /** The `i`-th distinct prompt or generated id, in order of first appearance. */
  seenId(i: number): number {
    return this.seen[i] ?? -1
  }

  private see(id: number): void {
    if (this.seenSet.has(id)) return
    this.seenSet.add(id)
    this.seen.push(id)
  }
}
