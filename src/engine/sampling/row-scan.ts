/**
 * One read of a logits row before anything is picked: its maximum (and where it first occurs), how
 * many entries are finite, and where the first few non-finite ones are. Every pick path starts from
 * these, so the vocabulary-sized row is read once here instead of once per question; the top_p
 * path (nucleus.ts) does its first quickselect round in the same read.
 */

/** How many non-finite ids a scan records; rows with more take the general paths. */
export const NON_FINITE_CAP = 16

/** What a pick returns for a row read in place that holds NaN or +∞: map it (copyRow) and pick again. */
export const NEEDS_MAPPING = -2

export class RowScan {
  /** The largest finite value, −∞ when none is. */
  max = -Infinity
  /** The first index holding `max`, -1 when no entry is finite. */
  argmax = -1
  /** How many entries are finite. */
  finite = 0
  /** How many entries are −∞ or NaN; the first `NON_FINITE_CAP` of them are in `nonFiniteIds`, ascending. */
  nonFinite = 0
  readonly nonFiniteIds = new Int32Array(NON_FINITE_CAP)
  /** Whether the row holds NaN or +∞: the sampler maps those (copyRow) before it reads a row in place. */
  needsMapping = false
  /** How many entries the scan covered. */
  size = 0

  /** Scans `key[0..n)`. */
  scan(key: Float32Array, n: number): this {
    this.reset()
    this.scanRange(key, 0, n)
    return this.finish(n)
  }

  /** Scans `key[from..to)` as part of a scan begun with `reset` and visited in ascending order. */
  scanRange(key: Float32Array, from: number, to: number): void {
    let max = this.max
    let argmax = this.argmax
    let nonFinite = this.nonFinite
    let nan = 0
    // Only locals inside the loop: V8 keeps such loops tight (a call or a property read, even on a
    // branch never taken, makes them up to three times slower).
    const { nonFiniteIds } = this
    const cap = NON_FINITE_CAP
    for (let i = from; i < to; i++) {
      const x = key[i]!
      if (x > max) {
        max = x
        argmax = i
      }
      if (!(x > -Infinity)) {
        if (nonFinite < cap) nonFiniteIds[nonFinite] = i
        nonFinite++
        nan |= +(x !== x)
      }
    }
    this.max = max
    this.argmax = argmax
    this.nonFinite = nonFinite
    if (nan) this.needsMapping = true
  }

  /** Starts a scan built from `scanRange` stretches (nucleus.ts has one that also keeps ids) and `visit`s, ended by `finish`. */
  reset(): void {
    this.max = -Infinity
    this.argmax = -1
    this.nonFinite = 0
    this.needsMapping = false
  }

  /** Adds entry `i`, holding `x`, visited out of order. */
  visit(i: number, x: number): void {
    if (x > this.max || (x === this.max && i < this.argmax)) {
      this.max = x
      this.argmax = i
    } else if (!(x > -Infinity)) {
      // Keep the recorded ids the smallest ones, ascending.
      let at = Math.min(this.nonFinite, NON_FINITE_CAP - 1)
      if (this.nonFinite < NON_FINITE_CAP || i < this.nonFiniteIds[at]!) {
        for (; at > 0 && this.nonFiniteIds[at - 1]! > i; at--) this.nonFiniteIds[at] = this.nonFiniteIds[at - 1]!
        this.nonFiniteIds[at] = i
      }
      this.nonFinite++
      if (x !== x) this.needsMapping = true
    }
  }

  /** Records only the maximum, for a path that reads the row another way (top_k's selection). */
  knowMaximum(max: number): void {
    this.reset()
    this.max = max
    // Not a scan of any row: nothing to guess from.
    this.size = 0
  }

  /** Ends a scan of `n` entries. */
  finish(n: number): this {
    this.size = n
    this.finite = n - this.nonFinite
    if (this.max === Infinity) this.needsMapping = true
    return this
  }

  /** The `j`-th finite index (0-based), when at most `NON_FINITE_CAP` entries are non-finite. */
  finiteAt(j: number): number {
    let i = j
    for (let k = 0; k < this.nonFinite && this.nonFiniteIds[k]! <= i; k++) i++
    return i
  }

  /**
   * The first, middle (index `finite >> 1`) and last finite index, which the plain path's first
   * quickselect pivot is the median of; undefined when they cannot be told (too many non-finite).
   */
  pivotCandidates(): [number, number, number] | undefined {
    if (this.finite === 0 || this.nonFinite > NON_FINITE_CAP) return undefined
    return [this.finiteAt(0), this.finiteAt(this.finite >> 1), this.finiteAt(this.finite - 1)]
  }
}
