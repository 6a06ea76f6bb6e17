/**
 * Prometheus metrics. The engine never imports prom-client: it reports plain
 * records through `EngineObserver` (called on the HTTP thread), and the HTTP
 * layer reports each response through `httpOnResponse`. This module turns both
 * into `kelix_*` metrics in one registry; `metrics-route.ts` serves it.
 *
 *   engine worker ──records──▶ EngineObserver ──▶ counters, gauges, histograms ─┐
 *   fastify onResponse ──▶ httpOnResponse ──▶ kelix_http_request_duration_seconds ┤──▶ GET /metrics
 *   collectDefaultMetrics ──▶ kelix_process_*, kelix_nodejs_* ──────────────────┘
 *
 * Every metric is listed, with its vLLM counterpart, in docs/metrics.md.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { ErrorCode } from '../errors/catalog.js'
import type { EngineObserver, RequestRecord, StepRecord } from '../batching/client-types.js'

export const METRIC_PREFIX = 'kelix_'

/**
 * Histogram buckets. Latency buckets include the common SLO thresholds
 * (time to first token: 0.1, 0.25, 0.5, 1, 2 and 5 s); counts use a 1-2-5 series.
 */
export const BUCKETS = {
  timeToFirstToken: [0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 20, 40, 80],
  mask: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
  interToken: [0.005, 0.01, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5],
  e2e: [0.1, 0.25, 0.5, 1, 2, 2.5, 5, 10, 15, 20, 30, 45, 60, 120, 300, 600],
  queue: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120],
  image: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  step: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5],
  batchSize: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
  stepTokens: [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192],
  length: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000],
  http: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
} as const

/** Terminal statuses of a request, pre-created at 0 so `rate()` sees them from the first scrape. */
/** The codes a request can be refused with before it runs (label values created at 0, so rate() sees the first one). */
const REJECTION_CODES: readonly ErrorCode[] = [
  'queue_full',
  'queue_tokens_full',
  'draining',
  'engine_unavailable',
  'timeout',
  'context_length_exceeded',
  'invalid_image',
  'image_too_large',
  'invalid_prompt',
  'invalid_value',
  'model_capability_missing',
  'engine_failed',
]

export const FINISH_REASONS: readonly RequestRecord['finishReason'][] = ['stop', 'length', 'abort', 'error', 'timeout']

/** The route label of a response that matched no route (keeps the label set bounded). */
export const UNMATCHED_ROUTE = 'unmatched'

export interface MetricsOptions {
  /** Node.js process metrics (`kelix_process_*`, `kelix_nodejs_*`); default true. */
  processMetrics?: boolean
  /** Labels added to every series, e.g. `{ model_name: 'kelix-tiny' }`; default none. */
  defaultLabels?: Record<string, string>
}

export interface Metrics {
  readonly registry: Registry
  /** Hand this to the engine host: every engine record reaches metrics through it. */
  readonly observer: EngineObserver
  /**
   * One finished HTTP response. `route` is the route's pattern (`/v1/models/:id`), never the raw
   * URL; `undefined` (no route matched) is recorded as `unmatched`.
   */
  httpOnResponse(route: string | undefined, method: string, statusCode: number, seconds: number): void
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry()
  if (options.defaultLabels) registry.setDefaultLabels(options.defaultLabels)
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX })
  const m = defineMetrics(registry)
  return {
    registry,
    observer: observerFor(m),
    httpOnResponse(route, method, statusCode, seconds) {
      m.httpDuration.observe({ route: route || UNMATCHED_ROUTE, method, status_code: String(statusCode) }, seconds)
    },
  }
}

type Defined = ReturnType<typeof defineMetrics>

function defineMetrics(registry: Registry) {
  const registers = [registry]
  const gauge = <L extends string = never>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Gauge<L>({ name: METRIC_PREFIX + name, help, labelNames, registers })
  const counter = <L extends string = never>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Counter<L>({ name: METRIC_PREFIX + name, help, labelNames, registers })
  const histogram = <L extends string = never>(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames: readonly L[] = [],
  ) => new Histogram<L>({ name: METRIC_PREFIX + name, help, buckets: [...buckets], labelNames, registers })

  const m = {
    running: gauge(
      'num_requests_running',
      'Requests in the running batch, as of the last engine step (or the loop going idle).',
    ),
    waiting: gauge(
      'num_requests_waiting',
      'Requests waiting for a place in the batch, as of the last engine step (or the loop going idle).',
    ),
    kvUsage: gauge(
      'kv_cache_usage_ratio',
      'Fraction of the KV cache in use, 0 to 1, as of the last engine step (or the loop going idle).',
    ),
    engineUp: gauge('engine_up', '1 while the engine loop is alive (fresh heartbeat), 0 otherwise.'),
    provider: gauge(
      'execution_provider_info',
      'The ONNX Runtime execution provider the engine runs on: 1 for the one in use.',
      ['provider'],
    ),

    promptTokens: counter('prompt_tokens_total', 'Prompt positions of finished requests, image positions included.'),
    generationTokens: counter(
      'generation_tokens_total',
      'Generated tokens (blocks) of finished requests, all choices.',
    ),
    imagePositions: counter('image_positions_total', 'Prompt positions taken by images in finished requests.'),
    finished: counter(
      'requests_finished_total',
      'Requests that ended, by finish reason (stop, length, abort, error, timeout).',
      ['finish_reason'],
    ),
    rejected: counter(
      'requests_rejected_total',
      'Requests refused before they ran, by reason (the stable error code).',
      ['reason'],
    ),
    aborts: counter(
      'request_aborts_total',
      'Requests that ended because the client went away (chat and image requests).',
    ),
    preemptions: counter('preemptions_total', 'Running requests preempted to free KV cache.'),
    prefixQueries: counter(
      'prefix_cache_queries_total',
      'Prompt positions of admitted requests looked up in the prefix cache.',
    ),
    prefixHits: counter(
      'prefix_cache_hits_total',
      'Prompt positions filled from the prefix cache instead of computed.',
    ),
    cacheHits: counter('visual_token_cache_hits_total', 'Images whose visual tokens came from the cache.'),
    cacheMisses: counter('visual_token_cache_misses_total', 'Images that had to be run through the visual tokenizer.'),

    ttft: histogram(
      'time_to_first_token_seconds',
      'Time from submit to the first token of the first choice.',
      BUCKETS.timeToFirstToken,
    ),
    itl: histogram('inter_token_latency_seconds', 'Time between consecutive tokens of one choice.', BUCKETS.interToken),
    e2e: histogram('e2e_request_latency_seconds', 'Time from submit to the end of the request.', BUCKETS.e2e),
    queue: histogram('request_queue_time_seconds', 'Time a request waited for a place in the batch.', BUCKETS.queue),
    preprocess: histogram('image_preprocess_seconds', 'Time to decode, resize and normalise one image.', BUCKETS.image),
    tokenize: histogram(
      'visual_tokenize_seconds',
      'Time to run one image through the visual tokenizer (cache misses only).',
      BUCKETS.image,
    ),
    step: histogram(
      'engine_step_duration_seconds',
      'Duration of one engine step (schedule, forward, update).',
      BUCKETS.step,
    ),
    batchSize: histogram('step_batch_size', 'Sequences in one engine step.', BUCKETS.batchSize),
    stepTokens: histogram(
      'step_tokens',
      'Tokens computed in one engine step (decodes plus prefill chunks).',
      BUCKETS.stepTokens,
    ),
    promptLength: histogram('request_prompt_tokens', 'Prompt positions per finished request.', BUCKETS.length),
    generationLength: histogram(
      'request_generation_tokens',
      'Generated tokens per finished request, all choices.',
      BUCKETS.length,
    ),
    constrained: counter(
      'constrained_requests_total',
      'Finished chat requests whose answers a response format constrained (JSON schema, JSON object).',
    ),
    maskTime: histogram(
      'grammar_mask_seconds',
      'Time one engine step spent on grammar masks (steps with constrained rows only; computed while the LLM runs).',
      BUCKETS.mask,
    ),
    constrainedRows: histogram(
      'step_constrained_rows',
      'Rows of one engine step sampled under a grammar (steps with constrained rows only).',
      BUCKETS.batchSize,
    ),
    imageRequests: counter('image_requests_total', 'Image-generation requests that delivered all their images.'),
    imagesGenerated: counter('images_generated_total', 'Images generated (PNG delivered).'),
    imageTokens: counter('image_tokens_total', 'Blocks written in the token phase of image generation.'),
    denoiseStep: histogram(
      'denoise_step_duration_seconds',
      'Duration of one batched denoise (DiT) step.',
      BUCKETS.step,
    ),
    imageLatency: histogram(
      'image_request_latency_seconds',
      'Time from submit to the last image of an image request.',
      BUCKETS.e2e,
    ),
    httpDuration: histogram(
      'http_request_duration_seconds',
      'HTTP request duration, by route pattern, method and status code.',
      BUCKETS.http,
      ['route', 'method', 'status_code'],
    ),
  }
  for (const reason of FINISH_REASONS) m.finished.inc({ finish_reason: reason }, 0)
  for (const code of REJECTION_CODES) m.rejected.inc({ reason: code }, 0)
  return m
}

const seconds = (ms: number) => ms / 1000

function observerFor(m: Defined): EngineObserver {
  return {
    requestFinished(r: RequestRecord) {
      m.finished.inc({ finish_reason: r.finishReason })
      if (r.finishReason === 'abort') m.aborts.inc()
      m.promptTokens.inc(r.promptTokens)
      m.generationTokens.inc(r.completionTokens)
      m.imagePositions.inc(r.imagePositions)
      m.promptLength.observe(r.promptTokens)
      m.generationLength.observe(r.completionTokens)
      m.queue.observe(seconds(r.queueMs))
      if (r.firstTokenMs !== undefined) m.ttft.observe(seconds(r.firstTokenMs))
      for (const gap of r.interTokenMs) m.itl.observe(seconds(gap))
      m.e2e.observe(seconds(r.totalMs))
      if (r.constrained) m.constrained.inc()
    },
    requestRejected(code) {
      m.rejected.inc({ reason: code })
    },
    step(s: StepRecord) {
      m.step.observe(seconds(s.durationMs))
      m.batchSize.observe(s.batchSize)
      m.stepTokens.observe(s.batchedTokens)
      m.running.set(s.running)
      m.waiting.set(s.waiting)
      m.kvUsage.set(s.kvUsage)
      if (s.preemptions > 0) m.preemptions.inc(s.preemptions)
      if (s.prefixQueriedPositions > 0) m.prefixQueries.inc(s.prefixQueriedPositions)
      if (s.prefixHitPositions > 0) m.prefixHits.inc(s.prefixHitPositions)
      if (s.constrainedRows > 0) {
        m.maskTime.observe(seconds(s.maskMs))
        m.constrainedRows.observe(s.constrainedRows)
      }
    },
    image(i) {
      m.preprocess.observe(seconds(i.preprocessMs))
      if (i.cacheHit) m.cacheHits.inc()
      else {
        m.cacheMisses.inc()
        m.tokenize.observe(seconds(i.tokenizeMs))
      }
    },
    engineUp(up) {
      m.engineUp.set(up ? 1 : 0)
    },
    executionProvider(provider) {
      m.provider.reset()
      m.provider.set({ provider }, 1)
    },
    gauges(g) {
      m.running.set(g.running)
      m.waiting.set(g.waiting)
      m.kvUsage.set(g.kvUsage)
    },
    imageRequestAborted() {
      m.aborts.inc()
    },
    imageRequestFinished(r) {
      m.imageRequests.inc()
      m.imagesGenerated.inc(r.images)
      m.imageTokens.inc(r.imageTokens)
      for (const ms of r.denoiseStepMs) m.denoiseStep.observe(seconds(ms))
      m.imageLatency.observe(seconds(r.totalMs))
    },
  }
}
