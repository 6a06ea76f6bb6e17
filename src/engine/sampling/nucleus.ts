/**
 * top_p over a whole row with exactly the plain path's result (draw.ts: every finite id in order →
 * weights → `nucleusSize` → min_p → draw), without an exponential per id.
 *
 * The plain path's weighted quickselect starts on the whole row. In an LLM-like row its first
 * rounds all "go left": the pivot is an ordinary id and the ids ranking before it already carry
 * more than top_p of the mass, so the range shrinks to them. Which way a round goes depends on
 * weights, but the range it leaves depends only on the logits (the pivot is a median of three, the
 * Lomuto scan keeps the better side in scan order), so those rounds are replayed here on the logits
 * alone, until at most `RANGE_TARGET` ids remain. A round is replayed only when going left is
 * certain: each id it drops weighs at most its pivot's weight, and the bounds of all dropped ids
 * must stay below (1 − top_p) of the least possible total, 1 (the best id's weight).
 *
 * The remaining range then runs through the same search (`NucleusSearch`), with the same weights (same
 * `Math.exp` on the same values) in the same order, so every sum it forms is the plain path's to
 * the bit. Only the target, top_p · total, is not: the dropped mass is known only within
 * [0, bound]. The search is told that interval and stops at a comparison it leaves open. The
 * total is then narrowed in steps, each step only when the last left a comparison open: the
 * range the rounds had when it first fell below `UPPER_RANGE` ids (in an LLM-like row it holds
 * nearly all the mass the rounds drop) is summed closely (`expSum`, relative error 1e-9), then the
 * whole row, then the row exactly as the plain path sums it. Rows where no round can be replayed
 * (most of the mass spread thinly) take the plain path.
 */
import type { SamplingParams } from '../types.js'
import { drawAboveMinP, pickPlain, totalWeight } from './draw.js'
import { EXP_SUM_ERROR, expSum } from './exp-sum.js'
import type { Rng } from './rng.js'
import { NEEDS_MAPPING, NON_FINITE_CAP, type RowScan } from './row-scan.js'
import type { SamplerScratch } from './scratch.js'
import { medianOfThree, NucleusSearch } from './select.js'

type NucleusParams = Pick<SamplingParams, 'temperature' | 'topP' | 'minP'>

/** Rounds are replayed until the range holds at most this many ids; each of those costs one `Math.exp`. */
const RANGE_TARGET = 1024
/** The first range of at most this many ids keeps its logits, to be summed if the bound is too loose. */
const UPPER_RANGE = 1 << 15
/**
 * Relative slack for float sums of at most 2^20 non-negative terms (each within 2^20·2^-53 ≈ 1.2e-10
 * of the exact sum), so that a bound built from our sums also holds for the plain path's.
 */
const SUM_SLACK = 1e-9

/** The longest row replayed; longer ones take the plain path. */
const MAX_ROW = 1 << 18
/**
 * The range during the replay (ids with their logits), the next one being built, and the logits of
 * the `UPPER_RANGE` range: 4.3 MB, one set for the whole thread, like a shared `SamplerScratch`
 * (`sample` is synchronous and keeps nothing between calls). Module constants on purpose: V8
 * compiles a loop that stores into a typed array it knows as a constant about twice as fast as one
 * storing into an argument, and these loops are most of the cost.
 */
const RANGE_IDS = new Int32Array(MAX_ROW)
const RANGE_VALUES = new Float32Array(MAX_ROW)
const NEXT_IDS = new Int32Array(MAX_ROW)
const NEXT_VALUES = new Float32Array(MAX_ROW)
const UPPER_VALUES = new Float32Array(UPPER_RANGE)

/** How often each way through `pickNucleus` was taken, for tests and the benchmark. */
export const nucleusPaths = { replayed: 0, upperRangeSum: 0, rowSum: 0, exactSum: 0, plain: 0 }

/** The range left after the replayed rounds: `ids[0..length)` in the plain path's order, and a bound on what it dropped. */
export interface Range {
  ids: Int32Array
  length: number
  droppedWeight: number
  /** How many logits the first range below `UPPER_RANGE` ids left in `UPPER_VALUES` (0: none). */
  upperLength: number
  /** A bound on the weight the rounds dropped before that range. */
  droppedAboveUpper: number
}

/** A threshold strictly between the float32 `x` and the next float32 below it: for float32 `y`, `y > justBelow(x)` is `y >= x`. */
function justBelow(x: number): number {
  return x - Math.max(Math.abs(x) * 2 ** -25, 2 ** -151)
}

/**
 * The plain path's first round over the row, reading it in place, in the same read as its scan
 * (into `scan`). Its candidates are the finite ids in order; Lomuto moves the last one into the
 * pivot's slot and scans every slot but the last; non-finite ids never rank before a finite pivot,
 * so reading them changes nothing. `ends` are the first, middle and last finite ids, which the
 * pivot is the median of: the round is right only if the scan confirms them. Returns how many ids
 * were kept, in `RANGE_IDS`/`RANGE_VALUES`.
 */
function firstRound(key: Float32Array, n: number, ends: readonly number[], scan: RowScan): number {
  const last = ends[2]!
  const pivot = medianOfThree(key, ends[0]!, ends[1]!, last)
  const pv = key[pivot]!
  const lastValue = key[last]!
  scan.reset()
  // Below the pivot's id, ties with it rank before it.
  let kept = scanKeeping(key, 0, pivot, justBelow(pv), scan, 0)
  if (pivot !== last) {
    RANGE_IDS[kept] = last
    RANGE_VALUES[kept] = lastValue
    kept += +(lastValue > pv)
  }
  kept = scanKeeping(key, pivot + 1, last, pv, scan, kept)
  // Past the last finite id there is nothing to keep, only the scan to finish.
  scan.scanRange(key, last + 1, n)
  scan.visit(pivot, pv)
  if (pivot !== last) scan.visit(last, lastValue)
  scan.finish(n)
  return kept
}

/**
 * `RowScan.scanRange` over `key[from..to)`, and in the same read appends every index and value to
 * `RANGE_IDS`/`RANGE_VALUES` from position `kept`, counting those above `threshold`: every entry is
 * written and only the returned count says which stay, so there is no branch to mispredict.
 */
function scanKeeping(
  key: Float32Array,
  from: number,
  to: number,
  threshold: number,
  scan: RowScan,
  kept: number,
): number {
  let max = scan.max
  let argmax = scan.argmax
  let nonFinite = scan.nonFinite
  let nan = 0
  // Only locals inside the loop: a property or an imported binding read there, even on a branch
  // never taken, makes V8 compile it up to twice as slow.
  const { nonFiniteIds } = scan
  const cap = NON_FINITE_CAP
  for (let i = from; i < to; i++) {
    const x = key[i]!
    RANGE_IDS[kept] = i
    RANGE_VALUES[kept] = x
    kept += +(x > threshold)
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
  scan.max = max
  scan.argmax = argmax
  scan.nonFinite = nonFinite
  if (nan) scan.needsMapping = true
  return kept
}

/**
 * Appends the entries `[from, to)` of the range to `NEXT_IDS`/`NEXT_VALUES` from position `kept`,
 * counting those that rank before the entry `pivot` of value `pv`; branch-free like `scanKeeping`
 * (ties with the pivot are rare).
 */
function keepFromRange(from: number, to: number, pivot: number, pv: number, kept: number): number {
  for (let j = from; j < to; j++) {
    const id = RANGE_IDS[j]!
    const x = RANGE_VALUES[j]!
    NEXT_IDS[kept] = id
    NEXT_VALUES[kept] = x
    kept += +(x > pv)
    if (x === pv && id < pivot) kept++
  }
  return kept
}

/**
 * Scans the row into `scratch.scan` and replays the quickselect's first rounds (see the file
 * comment); undefined when not even the first is certain, or the row is small, holds NaN or +∞,
 * or has many non-finite entries (the plain path is as good). Exported for tests.
 */
export function replayRounds(
  key: Float32Array,
  n: number,
  p: NucleusParams,
  scratch: SamplerScratch,
): Range | undefined {
  const { scan } = scratch
  if (n <= RANGE_TARGET || n > MAX_ROW) {
    scan.scan(key, n)
    return undefined
  }
  // The first round needs the first, middle and last finite ids before the scan that finds them:
  // guess they are where the last row scanned had them (the engine masks the same ids every step),
  // and redo the round when the scan says otherwise.
  const guess = (scan.size === n ? scan.pivotCandidates() : undefined) ?? [0, n >> 1, n - 1]
  let length = firstRound(key, n, guess, scan)
  const ends = scan.pivotCandidates()
  if (scan.needsMapping || ends === undefined) return undefined
  if (ends[0] !== guess[0] || ends[1] !== guess[1] || ends[2] !== guess[2]) length = firstRound(key, n, ends, scan)

  const invT = 1 / p.temperature
  // No dropped id outweighs the pivot it was dropped at (Math.exp is monotone to within an ulp).
  const weightBound = (pv: number) => Math.exp((pv - scan.max) * invT) * (1 + SUM_SLACK)
  const maxDropped = 1 - p.topP - SUM_SLACK
  let droppedWeight = (scan.finite - length) * weightBound(key[medianOfThree(key, ends[0], ends[1], ends[2])]!)
  if (!(droppedWeight <= maxDropped)) return undefined

  let upperLength = 0
  let droppedAboveUpper = 0
  for (;;) {
    if (upperLength === 0 && length <= UPPER_RANGE) {
      UPPER_VALUES.set(RANGE_VALUES.subarray(0, length))
      upperLength = length
      droppedAboveUpper = droppedWeight
    }
    if (length <= RANGE_TARGET) break
    const mid = length >> 1
    const end = length - 1
    const pivot = medianOfThree(key, RANGE_IDS[0]!, RANGE_IDS[mid]!, RANGE_IDS[end]!)
    const at = pivot === RANGE_IDS[0] ? 0 : pivot === RANGE_IDS[mid] ? mid : end
    const pv = RANGE_VALUES[at]!
    // Lomuto again: the last entry takes the pivot's slot, the last slot is not scanned.
    let kept = keepFromRange(0, at, pivot, pv, 0)
    if (at !== end) kept = keepFromRange(end, end + 1, pivot, pv, kept)
    kept = keepFromRange(at + 1, end, pivot, pv, kept)
    const dropped = droppedWeight + (length - kept) * weightBound(pv)
    if (!(dropped <= maxDropped)) break
    droppedWeight = dropped
    length = kept
    RANGE_IDS.set(NEXT_IDS.subarray(0, kept))
    RANGE_VALUES.set(NEXT_VALUES.subarray(0, kept))
  }
  return { ids: RANGE_IDS, length, droppedWeight, upperLength, droppedAboveUpper }
}

/**
 * Picks an index of `key[0..n)` for `p.topP < 1` and no top_k, scanning the row into
 * `scratch.scan`; -1 when no entry is finite, `NEEDS_MAPPING` when it holds NaN or +∞.
 */
export function pickNucleus(key: Float32Array, n: number, p: NucleusParams, scratch: SamplerScratch, rng: Rng): number {
  const { order, weights, scan } = scratch
  const range = replayRounds(key, n, p, scratch)
  if (scan.needsMapping) return NEEDS_MAPPING
  if (range === undefined) {
    nucleusPaths.plain++
    return pickPlain(key, n, scan.max, p, order, weights, rng)
  }
  nucleusPaths.replayed++
  const invT = 1 / p.temperature
  let rangeWeight = 0
  for (let j = 0; j < range.length; j++) {
    const id = range.ids[j]!
    const w = Math.exp((key[id]! - scan.max) * invT)
    weights[id] = w
    rangeWeight += w
  }
  // The target top_p · total, narrowed only as far as a comparison needs it.
  order.set(range.ids.subarray(0, range.length))
  const search = new NucleusSearch(order, key, weights, range.length)
  const { topP } = p
  let size = search.run(
    topP * rangeWeight * (1 - SUM_SLACK),
    topP * (rangeWeight + range.droppedWeight) * (1 + SUM_SLACK),
  )
  const error = EXP_SUM_ERROR + SUM_SLACK
  if (size < 0 && range.upperLength > 0) {
    nucleusPaths.upperRangeSum++
    const upper = expSum(UPPER_VALUES, range.upperLength, scan.max, invT)
    size = search.run(
      topP * upper * (1 - error),
      topP * (upper * (1 + error) + range.droppedAboveUpper) * (1 + SUM_SLACK),
    )
  }
  if (size < 0) {
    nucleusPaths.rowSum++
    const total = expSum(key, n, scan.max, invT)
    size = search.run(topP * total * (1 - error), topP * total * (1 + error))
  }
  if (size < 0) {
    nucleusPaths.exactSum++
    // The plain path's own sum: every finite id in order.
    let total = 0
    for (let i = 0; i < n; i++) {
      const x = key[i]!
      if (x > -Infinity) total += Math.exp((x - scan.max) * invT)
    }
    size = search.run(topP * total)
  }
  return drawAboveMinP(order, weights, size, totalWeight(order, weights, size), p.minP, rng)
}
