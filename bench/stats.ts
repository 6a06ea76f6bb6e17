/** The median of `values` (any order); NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const s = [...values].sort((a, b) => a - b)
  const m = s.length / 2
  return Number.isInteger(m) ? ((s[m - 1] as number) + (s[m] as number)) / 2 : (s[Math.floor(m)] as number)
}
