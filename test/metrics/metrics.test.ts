/**
 * The metrics module fed known engine records through EngineObserver, read back as
 * Prometheus text from GET /metrics: exact counts, sums and bucket counts.
 */
import Fastify from 'fastify'
import t from 'tap'
import type { RequestRecord } from '../../src/batching/client-types.js'
import { BUCKETS, createMetrics, type Metrics } from '../../src/server/metrics.js'
import { httpMetricsHook, metricsRoute } from '../../src/server/metrics-route.js'

/** Durations whose seconds are exact binary fractions, so sums print exactly. */
const REQUESTS: RequestRecord[] = [
  {
    finishReason: 'stop',
    promptTokens: 12,
    completionTokens: 5,
    imagePositions: 0,
    queueMs: 125,
    firstTokenMs: 250,
    totalMs: 1000,
    interTokenMs: [62.5, 62.5, 125, 250],
    constrained: true,
  },
  {
    finishReason: 'length',
    promptTokens: 100,
    completionTokens: 16,
    imagePositions: 64,
    queueMs: 500,
    firstTokenMs: 2000,
    totalMs: 4000,
    interTokenMs: [500],
    constrained: false,
  },
  {
    finishReason: 'abort',
    promptTokens: 7,
    completionTokens: 0,
    imagePositions: 0,
    queueMs: 0,
    firstTokenMs: undefined,
    totalMs: 3000,
    interTokenMs: [],
    constrained: false,
  },
]

function feed(metrics: Metrics): void {
  const o = metrics.observer
  o.engineUp(true)
  for (const r of REQUESTS) o.requestFinished(r)
  o.requestRejected('queue_full')
  o.requestRejected('queue_full')
  o.requestRejected('invalid_image')
  o.step({
    durationMs: 15.625,
    batchSize: 3,
    batchedTokens: 130,
    running: 2,
    waiting: 5,
    kvUsage: 0.5,
    preemptions: 1,
    prefixQueriedPositions: 120,
    prefixHitPositions: 96,
    constrainedRows: 2,
    maskMs: 1.953125,
  })
  o.step({
    durationMs: 31.25,
    batchSize: 1,
    batchedTokens: 1,
    running: 1,
    waiting: 0,
    kvUsage: 0.25,
    preemptions: 0,
    prefixQueriedPositions: 10,
    prefixHitPositions: 0,
    constrainedRows: 0,
    maskMs: 0,
  })
  o.image({ preprocessMs: 7.8125, tokenizeMs: 31.25, cacheHit: false })
  o.image({ preprocessMs: 1.953125, tokenizeMs: 0, cacheHit: true })
}

/** The sample lines of one metric family (no HELP/TYPE), in exposition order. */
function samples(text: string, name: string): string[] {
  const sample = new RegExp(`^${name}(_bucket|_sum|_count)?[{ ]`)
  return text.split('\n').filter((line) => sample.test(line))
}

/** Expected bucket lines of an unlabelled histogram: counts of values <= each bound. */
function buckets(name: string, bounds: readonly number[], values: number[]): string[] {
  const lines = bounds.map((b) => `${name}_bucket{le="${b}"} ${values.filter((v) => v <= b).length}`)
  return [...lines, `${name}_bucket{le="+Inf"} ${values.length}`]
}

async function scrape(metrics: Metrics) {
  const app = Fastify()
  app.addHook('onResponse', httpMetricsHook(metrics))
  await app.register(metricsRoute, { registry: metrics.registry })
  app.get('/v1/models/:id', async () => ({ ok: true }))
  await app.inject({ method: 'GET', url: '/v1/models/kelix-tiny' })
  await app.inject({ method: 'GET', url: '/v1/models/other' })
  await app.inject({ method: 'GET', url: '/no/such/route' })
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  await app.close()
  return res
}

t.test('GET /metrics serves the Prometheus text format', async (t) => {
  const metrics = createMetrics()
  const res = await scrape(metrics)
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  t.match(res.body, /^# HELP kelix_process_cpu_user_seconds_total /m, 'Node process metrics carry the kelix_ prefix')
  t.match(res.body, /^kelix_nodejs_eventloop_lag_seconds \d/m)
})

t.test('gauges show the last engine step and the engine state', async (t) => {
  const metrics = createMetrics({ processMetrics: false })
  feed(metrics)
  const text = (await scrape(metrics)).body
  t.same(samples(text, 'kelix_num_requests_running'), ['kelix_num_requests_running 1'])
  t.same(samples(text, 'kelix_num_requests_waiting'), ['kelix_num_requests_waiting 0'])
  t.same(samples(text, 'kelix_kv_cache_usage_ratio'), ['kelix_kv_cache_usage_ratio 0.25'])
  t.same(samples(text, 'kelix_engine_up'), ['kelix_engine_up 1'])
  metrics.observer.engineUp(false)
  t.same(samples(await metrics.registry.metrics(), 'kelix_engine_up'), ['kelix_engine_up 0'])
})

t.test('counters sum the finished requests: N requests give N finished and the usage totals', async (t) => {
  const metrics = createMetrics({ processMetrics: false })
  feed(metrics)
  const text = (await scrape(metrics)).body
  const sum = (f: (r: RequestRecord) => number) => REQUESTS.reduce((a, r) => a + f(r), 0)
  t.same(samples(text, 'kelix_prompt_tokens_total'), [`kelix_prompt_tokens_total ${sum((r) => r.promptTokens)}`])
  t.same(samples(text, 'kelix_prompt_tokens_total'), ['kelix_prompt_tokens_total 119'])
  t.same(samples(text, 'kelix_generation_tokens_total'), ['kelix_generation_tokens_total 21'])
  t.same(samples(text, 'kelix_image_positions_total'), ['kelix_image_positions_total 64'])
  t.same(samples(text, 'kelix_requests_finished_total'), [
    'kelix_requests_finished_total{finish_reason="stop"} 1',
    'kelix_requests_finished_total{finish_reason="length"} 1',
    'kelix_requests_finished_total{finish_reason="abort"} 1',
    'kelix_requests_finished_total{finish_reason="error"} 0',
    'kelix_requests_finished_total{finish_reason="timeout"} 0',
  ])
  t.same(samples(text, 'kelix_request_aborts_total'), ['kelix_request_aborts_total 1'])
  t.same(samples(text, 'kelix_preemptions_total'), ['kelix_preemptions_total 1'])
  t.same(samples(text, 'kelix_prefix_cache_queries_total'), ['kelix_prefix_cache_queries_total 130'])
  t.same(samples(text, 'kelix_prefix_cache_hits_total'), ['kelix_prefix_cache_hits_total 96'])
  t.same(samples(text, 'kelix_visual_token_cache_hits_total'), ['kelix_visual_token_cache_hits_total 1'])
  t.same(samples(text, 'kelix_visual_token_cache_misses_total'), ['kelix_visual_token_cache_misses_total 1'])
  t.same(samples(text, 'kelix_constrained_requests_total'), ['kelix_constrained_requests_total 1'])
})

t.test('grammar masks: observed for steps with constrained rows only', async (t) => {
  const metrics = createMetrics({ processMetrics: false })
  feed(metrics)
  const text = (await scrape(metrics)).body
  t.same(samples(text, 'kelix_grammar_mask_seconds').slice(-2), [
    'kelix_grammar_mask_seconds_sum 0.001953125',
    'kelix_grammar_mask_seconds_count 1',
  ])
  t.same(samples(text, 'kelix_step_constrained_rows').slice(-2), [
    'kelix_step_constrained_rows_sum 2',
    'kelix_step_constrained_rows_count 1',
  ])
})

t.test('rejections are counted by reason, every known reason present from the start', async (t) => {
  const metrics = createMetrics({ processMetrics: false })
  feed(metrics)
  const text = (await scrape(metrics)).body
  t.same(samples(text, 'kelix_requests_rejected_total'), [
    'kelix_requests_rejected_total{reason="queue_full"} 2',
    'kelix_requests_rejected_total{reason="queue_tokens_full"} 0',
    'kelix_requests_rejected_total{reason="draining"} 0',
    'kelix_requests_rejected_total{reason="engine_unavailable"} 0',
    'kelix_requests_rejected_total{reason="timeout"} 0',
    'kelix_requests_rejected_total{reason="context_length_exceeded"} 0',
    'kelix_requests_rejected_total{reason="invalid_image"} 1',
    'kelix_requests_rejected_total{reason="image_too_large"} 0',
    'kelix_requests_rejected_total{reason="invalid_prompt"} 0',
    'kelix_requests_rejected_total{reason="invalid_value"} 0',
    'kelix_requests_rejected_total{reason="model_capability_missing"} 0',
    'kelix_requests_rejected_total{reason="engine_failed"} 0',
  ])
})

t.test('time to first token has the SLO buckets and skips requests that produced no token', async (t) => {
  for (const slo of [0.1, 0.25, 0.5, 1, 2, 5])
    t.ok((BUCKETS.timeToFirstToken as readonly number[]).includes(slo), `bucket ${slo} s`)
  const metrics = createMetrics({ processMetrics: false })
  feed(metrics)
  const text = (await scrape(metrics)).body
  const name = 'kelix_time_to_first_token_seconds'
  t.same(samples(text, name), [
    ...buckets(name, BUCKETS.timeToFirstToken, [0.25, 2]),
    `${name}_sum 2.25`,
    `${name}_count 2`,
  ])
  t.match(
    text,
    /^kelix_time_to_first_token_seconds_bucket\{le="2"\} 2$/m,
    'a 2 s first token falls in the le="2" bucket',
  )
  t.match(text, /^kelix_time_to_first_token_seconds_bucket\{le="1.5"\} 1$/m)
})

t.test('latency histograms hold every gap, queue wait and request duration in seconds', async (t) => {
  const metrics = createMetrics({ processMetrics: false })
  feed(metrics)
  const text = (await scrape(metrics)).body
  const itl = 'kelix_inter_token_latency_seconds'
  t.same(samples(text, itl), [
    ...buckets(itl, BUCKETS.interToken, [0.0625, 0.0625, 0.125, 0.25, 0.5]),
    `${itl}_sum 1`,
    `${itl}_count 5`,
  ])
  t.match(text, /^kelix_inter_token_latency_seconds_bucket\{le="0.075"\} 2$/m)
  const queue = 'kelix_request_queue_time_seconds'
  t.same(samples(text, queue), [
    ...buckets(queue, BUCKETS.queue, [0.125, 0.5, 0]),
    `${queue}_sum 0.625`,
    `${queue}_count 3`,
  ])
  const e2e = 'kelix_e2e_request_latency_seconds'
  t.same(samples(text, e2e), [...buckets(e2e, BUCKETS.e2e, [1, 4, 3]), `${e2e}_sum 8`, `${e2e}_count 3`])
})

t.test('request lengths are observed once per finished request', async (t) => {
  const metrics = createMetrics({ processMetrics: false })
  feed(metrics)
  const text = (await scrape(metrics)).body
  const prompt = 'kelix_request_prompt_tokens'
  t.same(samples(text, prompt), [
    ...buckets(prompt, BUCKETS.length, [12, 100, 7]),
    `${prompt}_sum 119`,
    `${prompt}_count 3`,
  ])
  const gen = 'kelix_request_generation_tokens'
  t.same(samples(text, gen), [...buckets(gen, BUCKETS.length, [5, 16, 0]), `${gen}_sum 21`, `${gen}_count 3`])
})

t.test('engine steps record duration, batch size and tokens per step', async (t) => {
  const metrics = createMetrics({ processMetrics: false })
  feed(metrics)
  const text = (await scrape(metrics)).body
  const step = 'kelix_engine_step_duration_seconds'
  t.same(samples(text, step), [
    ...buckets(step, BUCKETS.step, [0.015625, 0.03125]),
    `${step}_sum 0.046875`,
    `${step}_count 2`,
  ])
  const batch = 'kelix_step_batch_size'
  t.same(samples(text, batch), [...buckets(batch, BUCKETS.batchSize, [3, 1]), `${batch}_sum 4`, `${batch}_count 2`])
  const tokens = 'kelix_step_tokens'
  t.same(samples(text, tokens), [
    ...buckets(tokens, BUCKETS.stepTokens, [130, 1]),
    `${tokens}_sum 131`,
    `${tokens}_count 2`,
  ])
})

t.test('images record preprocessing always and tokenization only on a cache miss', async (t) => {
  const metrics = createMetrics({ processMetrics: false })
  feed(metrics)
  const text = (await scrape(metrics)).body
  const pre = 'kelix_image_preprocess_seconds'
  t.same(samples(text, pre), [
    ...buckets(pre, BUCKETS.image, [0.0078125, 0.001953125]),
    `${pre}_sum 0.009765625`,
    `${pre}_count 2`,
  ])
  const tok = 'kelix_visual_tokenize_seconds'
  t.same(samples(text, tok), [...buckets(tok, BUCKETS.image, [0.03125]), `${tok}_sum 0.03125`, `${tok}_count 1`])
})

t.test('HTTP durations are labelled by route pattern, method and status; unmatched URLs share one label', async (t) => {
  const metrics = createMetrics({ processMetrics: false })
  const text = (await scrape(metrics)).body
  const counts = text.split('\n').filter((l) => l.startsWith('kelix_http_request_duration_seconds_count'))
  t.same(counts, [
    'kelix_http_request_duration_seconds_count{route="/v1/models/:id",method="GET",status_code="200"} 2',
    'kelix_http_request_duration_seconds_count{route="unmatched",method="GET",status_code="404"} 1',
  ])
})

t.test('httpOnResponse records exact durations', async (t) => {
  const metrics = createMetrics({ processMetrics: false })
  metrics.httpOnResponse('/v1/chat/completions', 'POST', 200, 0.75)
  metrics.httpOnResponse('/v1/chat/completions', 'POST', 200, 0.25)
  const text = await metrics.registry.metrics()
  const labels = 'route="/v1/chat/completions",method="POST",status_code="200"'
  t.match(text, new RegExp(`^kelix_http_request_duration_seconds_bucket\\{le="0.25",${labels}\\} 1$`, 'm'))
  t.match(text, new RegExp(`^kelix_http_request_duration_seconds_bucket\\{le="1",${labels}\\} 2$`, 'm'))
  t.match(text, new RegExp(`^kelix_http_request_duration_seconds_sum\\{${labels}\\} 1$`, 'm'))
  t.match(text, new RegExp(`^kelix_http_request_duration_seconds_count\\{${labels}\\} 2$`, 'm'))
})

t.test('default labels are added to every series', async (t) => {
  const metrics = createMetrics({ processMetrics: false, defaultLabels: { model_name: 'kelix-tiny' } })
  metrics.observer.engineUp(true)
  const text = await metrics.registry.metrics()
  t.match(text, /^kelix_engine_up\{model_name="kelix-tiny"\} 1$/m)
  t.match(text, /^kelix_requests_finished_total\{finish_reason="stop",model_name="kelix-tiny"\} 0$/m)
})

t.test('every exported metric is prefixed, counters end in _total and durations are in seconds', async (t) => {
  const metrics = createMetrics()
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    t.ok(m.name.startsWith('kelix_'), m.name)
    if (String(m.type) === 'counter') t.ok(m.name.endsWith('_total'), `${m.name} is a counter ending in _total`)
    t.notOk(/_(ms|milliseconds|percent)$/.test(m.name), `${m.name} uses base units`)
  }
})

t.test('two metric sets are independent registries', async (t) => {
  const a = createMetrics({ processMetrics: false })
  const b = createMetrics({ processMetrics: false })
  a.observer.requestRejected('draining')
  t.match(await a.registry.metrics(), /^kelix_requests_rejected_total\{reason="draining"\} 1$/m)
  t.match(await b.registry.metrics(), /^kelix_requests_rejected_total\{reason="draining"\} 0$/m)
})
