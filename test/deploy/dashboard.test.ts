/** The Grafana dashboard: generated copies up to date, importable shape, per-pod variables. */
import t from 'tap'
import { DASHBOARD_FILES, dashboardJson } from '../../deploy/grafana/dashboard.js'
import { dashboard, readText } from './helpers.js'

t.test('every shipped copy of the dashboard equals the generator output', async (t) => {
  const expected = dashboardJson()
  for (const file of DASHBOARD_FILES)
    t.equal(readText(file), expected, `${file} is current (npx tsx deploy/grafana/dashboard.ts)`)
})

t.test('the dashboard queries through the datasource variable and filters by job and pod', async (t) => {
  const d = dashboard()
  const variables = d.templating.list.map((v) => [v.name, v.type])
  t.same(variables, [
    ['datasource', 'datasource'],
    ['job', 'query'],
    ['instance', 'query'],
  ])
  for (const v of d.templating.list.slice(1))
    t.same(v.datasource, { type: 'prometheus', uid: '${datasource}' }, `variable ${v.name}`)
  for (const p of d.panels.filter((p) => p.type !== 'row')) {
    t.equal(p.datasource?.uid, '${datasource}', `${p.title} uses the datasource variable`)
    for (const target of p.targets ?? []) {
      t.equal(target.datasource?.uid, '${datasource}')
      t.match(
        target.expr,
        /job=~"\$job", instance=~"\$instance"/,
        `${p.title}: ${target.expr} is scoped to the chosen pods`,
      )
    }
  }
})

t.test('panels have unique ids and do not overlap on the 24-column grid', async (t) => {
  const panels = dashboard().panels
  t.equal(new Set(panels.map((p) => p.id)).size, panels.length)
  const owner = new Map<string, string>()
  const overlaps: string[] = []
  for (const p of panels) {
    const { x, y, w, h } = p.gridPos
    t.ok(x >= 0 && x + w <= 24, `${p.title} fits the grid`)
    for (let i = x; i < x + w; i++) {
      for (let j = y; j < y + h; j++) {
        const other = owner.get(`${i},${j}`)
        if (other) overlaps.push(`${p.title} / ${other}`)
        owner.set(`${i},${j}`, p.title)
      }
    }
  }
  t.same([...new Set(overlaps)], [])
})

t.test('the dashboard has the panels operators look for', async (t) => {
  const titles = dashboard().panels.map((p) => p.title)
  for (const title of [
    'Time to first token',
    'Inter-token latency',
    'End-to-end latency',
    'Token throughput',
    'Running and waiting by pod',
    'KV cache usage by pod',
    'Batch size per step',
    'Queue time',
    'Rejections by reason',
    'Aborts, errors and timeouts',
    'Image preprocessing',
    'Finish reasons',
  ]) {
    t.ok(titles.includes(title), title)
  }
})
