/** Prints rows of numbers as an aligned text table (also valid Markdown). */
export function formatTable(rows: ReadonlyArray<Record<string, string | number>>): string {
  const first = rows[0]
  if (first === undefined) return '(no rows)'
  const headers = Object.keys(first)
  const cell = (v: string | number | undefined) =>
    typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : (v ?? '')
  const body = rows.map((r) => headers.map((h) => cell(r[h])))
  const widths = headers.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] as string).length)))
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i] as number)).join(' | ')} |`
  return [line(headers), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n')
}
