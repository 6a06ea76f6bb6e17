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

/** The first index of the largest finite value in `key[0..n)`, or -1 when none is finite. */
export function argmax(key: Float32Array, n: number): number {
  let best = -1
  let max = -Infinity
  for (let i = 0; i < n; i++) {
    const x = key[i]!
    if (x > max) {
      max = x
      best = i
    }
  }
  return best
}

/** Position in `order[lo..hi)` of the median of its first, middle and last entries. */
function medianOfThree(order: Int32Array, key: Float32Array, lo: number, hi: number): number {
  const mid = lo + ((hi - lo) >> 1)
  const last = hi - 1
  const a = order[lo]!
  const b = order[mid]!
  const c = order[last]!
  if (ranksBefore(key, a, b)) {
    if (ranksBefore(key, b, c)) return mid
    return ranksBefore(key, a, c) ? last : lo
  }
  if (ranksBefore(key, a, c)) return lo
  return ranksBefore(key, b, c) ? last : mid
}

/**
 * Lomuto partition of `order[lo..hi)` around a median-of-three pivot. Returns the pivot's final
 * position `p`: entries in `[lo, p)` rank before it, entries in `(p, hi)` after it.
 */
function partition(order: Int32Array, key: Float32Array, lo: number, hi: number): number {
  const last = hi - 1
  const m = medianOfThree(order, key, lo, hi)
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
 * Nucleus by weighted quickselect: permutes `order[0..m)` and returns the smallest `e >= 1` such
 * that the `e` best entries carry weight `>= target`; they end up in `order[0..e)`.
 * Expected O(m), and no sort: each round only sums the weight on the better side of a pivot.
 */
export function nucleusSize(order: Int32Array, key: Float32Array, weights: Float64Array, m: number, target: number): number {
  // Invariant: order[0..lo) rank before order[lo..hi), their weight is `acc < target`, and the
  // answer lies in (lo, hi].
  let lo = 0
  let hi = m
  let acc = 0
  while (hi - lo > 1) {
    const p = partition(order, key, lo, hi)
    let left = 0
    for (let j = lo; j < p; j++) left += weights[order[j]!]!
    if (acc + left >= target) {
      hi = p
      continue
    }
    acc += left + weights[order[p]!]!
    if (acc >= target) return p + 1
    lo = p + 1
  }
  return hi
}

/**
 * The `count` best finite entries of `key[0..n)`, best first, written to `out`; returns how many
 * were found (fewer when fewer are finite). O(n · count) at worst, about O(n) in practice since
 * most entries fail the first comparison.
 */
export function topIndices(key: Float32Array, n: number, count: number, out: Int32Array): number {
  if (count === 0) return 0
  let size = 0
  for (let i = 0; i < n; i++) {
    if (!(key[i]! > -Infinity)) continue
    if (size === count && !ranksBefore(key, i, out[count - 1]!)) continue
    let j = size < count ? size++ : count - 1
    while (j > 0 && ranksBefore(key, i, out[j - 1]!)) {
      out[j] = out[j - 1]!
      j--
    }
    out[j] = i
  }
  return size
}
