/**
 * The valid name closest to a mistyped one, for "did you mean" hints.
 */

/**
 * Edit distance counting an insertion, a deletion, a substitution or a swap
 * of two neighbouring characters as one edit (optimal string alignment), so
 * `--prot` is one edit from `--port`, as a reader would count it.
 */
export function editDistance(a: string, b: string): number {
  // rows[i][j]: the distance between a's first i characters and b's first j.
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  )
  const at = (i: number, j: number) => rows[i]![j]!
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const substitution = at(i - 1, j - 1) + (a[i - 1] === b[j - 1] ? 0 : 1)
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, substitution)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1)
      rows[i]![j] = best
    }
  }
  return at(a.length, b.length)
}

/**
 * The candidate nearest to `name`, or undefined when even the nearest needs
 * more than one edit in three (then a hint would mislead more than help).
 * Leading dashes are not counted: every flag shares them. Ties go to the
 * earlier candidate.
 */
export function closest(name: string, candidates: readonly string[]): string | undefined {
  const bare = (s: string) => s.replace(/^-+/, '')
  let best: { candidate: string; distance: number } | undefined
  for (const candidate of candidates) {
    const distance = editDistance(bare(name), bare(candidate))
    if (best === undefined || distance < best.distance) best = { candidate, distance }
  }
  if (best === undefined) return undefined
  const allowed = Math.max(1, Math.floor(Math.max(bare(name).length, bare(best.candidate).length) / 3))
  return best.distance <= allowed ? best.candidate : undefined
}
