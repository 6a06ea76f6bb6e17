/**
 * A real Prometheus scrapes a real HTTP /metrics endpoint and answers queries with the values the
 * engine observer was fed; it loads the alert rules and evaluates every dashboard expression.
 * The endpoint is a small fastify app serving the metrics registry (the full server's wiring is
 * the same two calls: httpMetricsHook and metricsRoute).
 */
import { join } from 'node:path'
import Fastify from 'fastify'
import t from 'tap'
import type { RequestRecord } from '../../src/batching/client-types.js'
import { createMetrics } from '../../src/server/metrics.js'
import { httpMetricsHook, metricsRoute } from '../../src/server/metrics-route.js'
import { ROOT, alertRules, dashboard, which } from './helpers.js'
import { startPrometheus } from './prometheus-harness.js'

const PROMETHEUS = which('prometheus')

const REQUESTS: RequestRecord[] = [
  {
    finishReason: 'stop',
    promptTokens: 20,
    completionTokens: 8,
    imagePositions: 16,
    queueMs: 250,
    firstTokenMs: 500,
    totalMs: 2000,
    interTokenMs: [125, 125],
    constrained: false,
  },
  {
    finishReason: 'stop',
    promptTokens: 30,
    completionTokens: 4,
    imagePositions: 0,
    queueMs: 0,
    firstTokenMs: 125,
    totalMs: 1000,
    interTokenMs: [250],
    constrained: false,
  },
  {
    finishReason: 'length',
    promptTokens: 10,
    completionTokens: 16,
    imagePositions: 0,
    queueMs: 500,
    firstTokenMs: 3000,
    totalMs: 6000,
    interTokenMs: [500],
    constrained: false,
  },
  {
    finishReason: 'abort',
    promptTokens: 5,
    completionTokens: 1,
    imagePositions: 0,
    queueMs: 0,
    firstTokenMs: 250,
    totalMs: 500,
    interTokenMs: [],
    constrained: false,
  },
]

t.test(
  'Prometheus scrapes /metrics and its queries return the fed values',
  { skip: PROMETHEUS ? false : 'prometheus is not installed (apt-get install prometheus)' },
  async (t) => {
    const metrics = createMetrics()
    const o = metrics.observer
    o.engineUp(true)
    for (const r of REQUESTS) o.requestFinished(r)
    o.requestRejected('queue_full')
    o.step({
      durationMs: 62.5,
      batchSize: 4,
      batchedTokens: 70,
      running: 4,
      waiting: 20,
      kvUsage: 0.97,
      preemptions: 2,
      prefixQueriedPositions: 0,
      prefixHitPositions: 0,
      constrainedRows: 0,
      maskMs: 0,
    })
    o.image({ preprocessMs: 15.625, tokenizeMs: 62.5, cacheHit: false })

    const app = Fastify()
    app.addHook('onResponse', httpMetricsHook(metrics))
    await app.register(metricsRoute, { registry: metrics.registry })
    app.get('/v1/models', async () => ({ object: 'list', data: [] }))
    const base = await app.listen({ host: '127.0.0.1', port: 0 })
    t.teardown(() => app.close())
    t.equal((await fetch(`${base}/v1/models`)).status, 200)

    const prom = await startPrometheus({
      binary: PROMETHEUS!,
      targets: [new URL(base).host],
      ruleFiles: [join(ROOT, 'deploy/prometheus/kelix-alerts.yml')],
    })
    t.teardown(() => prom.close())
    await prom.waitForScrapes(3)

    const value = async (expr: string) => {
      const result = await prom.query(expr)
      t.equal(result.length, 1, `${expr} returns one series`)
      return result[0]?.value[1]
    }
    const sum = (f: (r: RequestRecord) => number) => String(REQUESTS.reduce((a, r) => a + f(r), 0))

    t.equal(await value('up{job="kelix-serve"}'), '1')
    t.equal(await value('sum(kelix_requests_finished_total)'), String(REQUESTS.length), 'N requests give N finished')
    t.equal(await value('kelix_requests_finished_total{finish_reason="stop"}'), '2')
    t.equal(await value('kelix_requests_finished_total{finish_reason="length"}'), '1')
    t.equal(await value('kelix_request_aborts_total'), '1')
    t.equal(
      await value('kelix_prompt_tokens_total'),
      sum((r) => r.promptTokens),
    )
    t.equal(await value('kelix_prompt_tokens_total'), '65')
    t.equal(
      await value('kelix_generation_tokens_total'),
      sum((r) => r.completionTokens),
    )
    t.equal(await value('kelix_generation_tokens_total'), '29')
    t.equal(await value('kelix_image_positions_total'), '16')
    t.equal(await value('kelix_requests_rejected_total{reason="queue_full"}'), '1')
    t.equal(await value('kelix_preemptions_total'), '2')
    t.equal(await value('kelix_time_to_first_token_seconds_count'), '4')
    t.equal(await value('kelix_time_to_first_token_seconds_sum'), '3.875')
    t.equal(await value('kelix_time_to_first_token_seconds_bucket{le="0.5"}'), '3')
    t.equal(await value('kelix_time_to_first_token_seconds_bucket{le="2"}'), '3')
    t.equal(await value('kelix_time_to_first_token_seconds_bucket{le="5"}'), '4')
    t.equal(await value('kelix_inter_token_latency_seconds_count'), '4')
    t.equal(await value('kelix_e2e_request_latency_seconds_sum'), '9.5')
    t.equal(await value('kelix_num_requests_waiting'), '20')
    t.equal(await value('kelix_kv_cache_usage_ratio'), '0.97')
    t.equal(
      await value('kelix_http_request_duration_seconds_count{route="/v1/models",method="GET",status_code="200"}'),
      '1',
    )
    t.equal(await value('kelix_engine_up'), '1')
    t.ok(Number(await value('kelix_process_resident_memory_bytes')) > 0, 'process metrics are scraped')

    await t.test('every alert rule loads and evaluates; the saturated pod has its alerts pending', async (t) => {
      await prom.until(async () => (await prom.rules()).every((r) => r.health === 'ok'), 'rules evaluated')
      const rules = await prom.rules()
      t.same(
        rules.map((r) => [r.name, r.health]),
        alertRules().map((r) => [r.alert, 'ok']),
      )
      await prom.until(async () => (await prom.alerts()).length >= 2, 'alerts pending')
      const alerts = (await prom.alerts()).map((a) => `${a.labels.alertname} ${a.state}`).sort()
      t.same(alerts, ['KelixKVCacheNearlyFull pending', 'KelixQueueDepthHigh pending'])
    })

    await t.test('every dashboard expression is valid PromQL and returns data', async (t) => {
      const d = dashboard()
      const exprs = d.panels.flatMap((p) => (p.targets ?? []).map((target) => ({ panel: p.title, expr: target.expr })))
      for (const { panel, expr } of exprs) {
        const concrete = expr
          .replaceAll('$job', 'kelix-serve')
          .replaceAll('$instance', '.*')
          .replaceAll('$__rate_interval', '1m')
        const result = await prom.query(concrete)
        t.ok(result.length > 0, `${panel}: ${concrete}`)
      }
    })
  },
)
