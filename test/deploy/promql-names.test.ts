/**
 * Every PromQL expression shipped (dashboard, alert rules, the adapter rule, the HPA metric) names
 * only metrics that GET /metrics exports: a renamed metric breaks this test, not a dashboard.
 */
import t from 'tap'
import { alertRules, dashboard, kelixNames, queryableNames, readText, readYaml } from './helpers.js'

t.test('kelixNames reads metric names and skips label values', async (t) => {
  t.same(
    kelixNames('histogram_quantile(0.99, sum by (le) (rate(kelix_a_bucket{job="kelix_not_a_metric"}[5m]))) / kelix_b'),
    ['kelix_a_bucket', 'kelix_b'],
  )
  t.same(kelixNames('up{job="kelix-serve"} == 0'), [])
})

t.test('every dashboard expression names only exported metrics', async (t) => {
  const known = await queryableNames()
  const d = dashboard()
  const exprs = d.panels.flatMap((p) => (p.targets ?? []).map((target) => ({ panel: p.title, expr: target.expr })))
  t.ok(exprs.length >= 40, `the dashboard has ${exprs.length} expressions`)
  for (const v of d.templating.list) {
    if (v.type === 'query') exprs.push({ panel: `variable ${v.name}`, expr: (v.query as { query: string }).query })
  }
  const used = new Set<string>()
  for (const { panel, expr } of exprs) {
    const names = kelixNames(expr)
    t.ok(names.length > 0, `${panel}: ${expr} reads a kelix metric`)
    for (const name of names) {
      used.add(name)
      t.ok(known.has(name), `${panel}: ${name} is exported`)
    }
  }
  const families = [...used].map((n) => n.replace(/_(bucket|sum|count)$/, ''))
  for (const name of [
    'kelix_time_to_first_token_seconds',
    'kelix_inter_token_latency_seconds',
    'kelix_e2e_request_latency_seconds',
    'kelix_request_queue_time_seconds',
    'kelix_num_requests_running',
    'kelix_num_requests_waiting',
    'kelix_kv_cache_usage_ratio',
    'kelix_step_batch_size',
    'kelix_requests_rejected_total',
    'kelix_request_aborts_total',
    'kelix_image_preprocess_seconds',
    'kelix_requests_finished_total',
    'kelix_prompt_tokens_total',
    'kelix_generation_tokens_total',
  ]) {
    t.ok(families.includes(name), `the dashboard charts ${name}`)
  }
})

t.test('every alert rule names only exported metrics', async (t) => {
  const known = await queryableNames()
  const rules = alertRules()
  t.same(
    rules.map((r) => r.alert),
    [
      'KelixInstanceDown',
      'KelixEngineDown',
      'KelixTimeToFirstTokenHigh',
      'KelixQueueDepthHigh',
      'KelixKVCacheNearlyFull',
      'KelixHighErrorRate',
      'KelixGenerationErrors',
    ],
  )
  for (const rule of rules) {
    for (const name of kelixNames(rule.expr)) t.ok(known.has(name), `${rule.alert}: ${name} is exported`)
  }
})

t.test('the prometheus-adapter rule and the HPA name an exported gauge', async (t) => {
  const known = await queryableNames()
  const adapter = readYaml<{ rules: { custom: { seriesQuery: string; name: { as: string } }[] } }>(
    'deploy/prometheus-adapter/values.yaml',
  )
  const rule = adapter.rules.custom[0]
  t.ok(rule)
  t.same(kelixNames(rule?.seriesQuery ?? ''), ['kelix_num_requests_waiting'])
  t.equal(rule?.name.as, 'kelix_num_requests_waiting')
  const hpa = readText('helm/kelix-serve/templates/hpa.yaml')
  const hpaNames = kelixNames(hpa)
  t.same(hpaNames, ['kelix_num_requests_waiting'])
  for (const name of hpaNames) t.ok(known.has(name), `${name} is exported`)
})
