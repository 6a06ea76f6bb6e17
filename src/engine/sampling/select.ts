/**
 * Partial selection over token indices, without sorting the vocabulary.
 *
 * Every function ranks local indices by one total order: higher value first, lower index (so lower
 * token id) on ties. A total order makes every result, and the order candidates are left in,
 * depend only on the values, never on how the batch was laid out.
 */

/** Whether index `a` ranks before index `b` in `key`: higher value first, lower index on ties. */
export function ranksBefore(key: Float32Array, a: number, b: number): boolean {
  const ka = key[a]!
  const kb = key[b]!
  return ka > kb || (ka === kb && a < b)
}

/** Which of the indices `a`, `b`, `c` ranks between the other two in `key`. */
export function medianOfThree(key: Float32Array, a: number, b: number, c: number): number {
  if (ranksBefore(key, a, b)) {
    if (ranksBefore(key, b, c)) return b
    return ranksBefore(key, a, c) ? c : a
  }
  if (ranksBefore(key, a, c)) return a
  return ranksBefore(key, b, c) ? c : b
}

/** Position in `order[lo..hi)` of the median of its first, middle and last entries. */
function pivotPosition(order: Int32Array, key: Float32Array, lo: number, hi: number): number {
  const mid = lo + ((hi - lo) >> 1)
  const median = medianOfThree(key, order[lo]!, order[mid]!, order[hi - 1]!)
  return median === order[lo] ? lo : median === order[mid] ? mid : hi - 1
}

/**
 * Lomuto partition of `order[lo..hi)` around a median-of-three pivot. Returns the pivot's final
 * position `p`: entries in `[lo, p)` rank before it, entries in `(p, hi)` after it.
 */
function partition(order: Int32Array, key: Float32Array, lo: number, hi: number): number {
  const last = hi - 1
  const m = pivotPosition(order, key, lo, hi)
  const pivot = order[m]!
  const pv = key[pivot]!
  order[m] = order[last]!
  order[last] = pivot
  let store = lo
  for (let i = lo; i < last; i++) {
    const x = order[i]!
    const kx = key[x]!
    // ranksBefore(key, x, pivot), spelled out for the hottest loop.
    if (kx > pv || (kx === pv && x < pivot)) {
      order[i] = order[store]!
      order[store] = x
      store++
    }
  }
  order[last] = order[store]!
  order[store] = pivot
  return store
}

/** Restores the heap below `pos`; the root holds the worst entry of `heap[0..size)`. */
function siftDown(heap: Int32Array, key: Float32Array, size: number, pos: number): void {
  const x = heap[pos]!
  for (;;) {
    let child = 2 * pos + 1
    if (child >= size) break
    const right = child + 1
    if (right < size && ranksBefore(key, heap[child]!, heap[right]!)) child = right
    const c = heap[child]!
    if (!ranksBefore(key, x, c)) break
    heap[pos] = c
    pos = child
  }
  heap[pos] = x
}

/** Moves `heap[pos]` up while it ranks after its parent. */
function siftUp(heap: Int32Array, key: Float32Array, pos: number): void {
  const x = heap[pos]!
  while (pos > 0) {
    const parent = (pos - 1) >> 1
    const p = heap[parent]!
    if (!ranksBefore(key, p, x)) break
    heap[pos] = p
    pos = parent
  }
  heap[pos] = x
}

/**
 * The `k` best finite entries of `key[0..n)`, written to `out[0..k)` as a heap (worst first, the
 * rest in heap order); returns how many were found. One pass with a bounded heap: an entry costs
 * one comparison with the current k-th best unless it beats it, so rows in no particular order
 * take about O(n + k log k log n), and O(n log k) at worst.
 */
export function selectTop(key: Float32Array, n: number, k: number, out: Int32Array): number {
  let size = 0
  // The root's value; later indices never win a tie, so `x > worst` is the whole test.
  let worst = -Infinity
  for (let i = 0; i < n; i++) {
    const x = key[i]!
    if (!(x > -Infinity)) continue
    if (size < k) {
      out[size] = i
      siftUp(out, key, size++)
    } else if (x > worst) {
      out[0] = i
      siftDown(out, key, k, 0)
    } else continue
    if (size === k) worst = key[out[0]!]!
  }
  return size
}

/**
 * Nucleus by weighted quickselect over `order[0..m)`: the smallest `e >= 1` such that the `e` best
 * entries carry weight `>= target`, moved to `order[0..e)`. Expected O(m), and no sort: each round
 * only sums the weight on the better side of a pivot.
 *
 * The target may be known only to lie in an interval: `run` then answers only if every comparison
 * comes out the same for the whole interval, and otherwise returns -1 and can be run again with a
 * narrower one, keeping the rounds already done (their comparisons hold for any sub-interval).
 */
export class NucleusSearch {
  // Invariant: order[0..lo) rank before order[lo..hi), their weight is `acc < target`, and the
  // answer lies in (lo, hi].
  private lo = 0
  private hi: number
  private acc = 0
  /** A round whose comparison was left open: its pivot's position (-1: none) and left-side weight. */
  private pivotAt = -1
  private left = 0

  constructor(
    private readonly order: Int32Array,
    private readonly key: Float32Array,
    private readonly weights: Float64Array,
    m: number,
  ) {
    this.hi = m
  }

  /** The nucleus size for a target in `[target, targetHigh]`, or -1 when that interval is too wide. */
  run(target: number, targetHigh = target): number {
    const { order, weights } = this
    while (this.hi - this.lo > 1) {
      if (this.pivotAt < 0) {
        this.pivotAt = partition(order, this.key, this.lo, this.hi)
        this.left = 0
        for (let j = this.lo; j < this.pivotAt; j++) this.left += weights[order[j]!]!
      }
      const p = this.pivotAt
      const better = this.acc + this.left
      if (better >= targetHigh) {
        this.hi = p
      } else if (better < target) {
        // The pivot joins; the sum is formed as the plain path forms it, to the bit.
        const acc = this.acc + (this.left + weights[order[p]!]!)
        if (acc >= targetHigh) return p + 1
        if (acc >= target) return -1
        this.acc = acc
        this.lo = p + 1
      } else return -1
      this.pivotAt = -1
    }
    return this.hi
  }
}

/** `NucleusSearch` for a known target. */
export function nucleusSize(
  order: Int32Array,
  key: Float32Array,
  weights: Float64Array,
  m: number,
  target: number,
): number {
  return new NucleusSearch(order, key, weights, m).run(target)
}

/**
 * The `count` best finite entries of `key[0..n)`, best first, written to `out`; returns how many
 * were found (fewer when fewer are finite). O(n · count) at worst, about O(n) in practice since
 * most entries fail the first comparison.
 */
export function topIndices(key: Float32Array, n: number, count: number, out: Int32Array): number {
  if (count === 0) return 0
  let size = 0
  // The entry to beat: below every float32 until the list is full (so only −∞ and NaN fail), then
  // the last one listed, which a later index never beats on a tie.
  let worst = -Number.MAX_VALUE
  for (let i = 0; i < n; i++) {
    const x = key[i]!
    if (!(x > worst)) continue
    let j = size < count ? size++ : count - 1
    while (j > 0 && ranksBefore(key, i, out[j - 1]!)) {
      out[j] = out[j - 1]!
      j--
    }
    out[j] = i
    if (size === count) worst = key[out[count - 1]!]!
  }
  return size
}
