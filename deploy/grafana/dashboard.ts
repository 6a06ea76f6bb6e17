/**
 * The Grafana dashboard, as code. `npx tsx deploy/grafana/dashboard.ts` writes
 * it to every place it ships from:
 *
 *   deploy/grafana/kelix-serve.json              import by hand, or docker-compose provisioning
 *   helm/kelix-serve/files/kelix-serve.json      the chart's dashboard ConfigMap (Grafana sidecar)
 *
 * test/deploy/dashboard.test.ts fails when a written copy differs from this source, and checks
 * that every expression names only metrics the server exports.
 */
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const DASHBOARD_FILES = ['deploy/grafana/kelix-serve.json', 'helm/kelix-serve/files/kelix-serve.json']

const DS = { type: 'prometheus', uid: '${datasource}' }
/** Every query is scoped to the chosen job and pods. */
const S = 'job=~"$job", instance=~"$instance"'
const RATE = '$__rate_interval'

interface Target {
  expr: string
  legend: string
  format?: 'heatmap'
}
interface PanelSpec {
  title: string
  description: string
  unit: string
  targets: Target[]
  type?: 'timeseries' | 'stat' | 'heatmap'
  w?: number
  h?: number
  max?: number
  stack?: boolean
}

const rate = (metric: string, extra = '') => `rate(${metric}{${S}${extra}}[${RATE}])`

/** p50, p90 and p99 of a histogram over all selected pods. */
function percentiles(histogram: string): Target[] {
  return [0.5, 0.9, 0.99].map((q) => ({
    expr: `histogram_quantile(${q}, sum by (le) (${rate(`${histogram}_bucket`)}))`,
    legend: `p${q * 100}`,
  }))
}

function mean(histogram: string): Target {
  return { expr: `sum(${rate(`${histogram}_sum`)}) / sum(${rate(`${histogram}_count`)})`, legend: 'mean' }
}

function perPodP99(histogram: string): Target {
  return {
    expr: `histogram_quantile(0.99, sum by (le, instance) (${rate(`${histogram}_bucket`)}))`,
    legend: 'p99 {{instance}}',
  }
}

function lengthHeatmap(histogram: string): Target {
  return { expr: `sum by (le) (increase(${histogram}_bucket{${S}}[${RATE}]))`, legend: '{{le}}', format: 'heatmap' }
}

const ROWS: [string, PanelSpec[]][] = [
  [
    'Overview',
    [
      {
        type: 'stat',
        w: 4,
        h: 4,
        title: 'Engines up',
        unit: 'none',
        description: 'Pods whose engine loop is alive (kelix_engine_up).',
        targets: [{ expr: `sum(kelix_engine_up{${S}})`, legend: 'up' }],
      },
      {
        type: 'stat',
        w: 4,
        h: 4,
        title: 'Requests / s',
        unit: 'reqps',
        description: 'Requests finished per second, all reasons.',
        targets: [{ expr: `sum(${rate('kelix_requests_finished_total')})`, legend: 'requests' }],
      },
      {
        type: 'stat',
        w: 4,
        h: 4,
        title: 'Running',
        unit: 'none',
        description: 'Requests in the running batch, all pods.',
        targets: [{ expr: `sum(kelix_num_requests_running{${S}})`, legend: 'running' }],
      },
      {
        type: 'stat',
        w: 4,
        h: 4,
        title: 'Waiting',
        unit: 'none',
        description: 'Requests waiting for a place in the batch, all pods.',
        targets: [{ expr: `sum(kelix_num_requests_waiting{${S}})`, legend: 'waiting' }],
      },
      {
        type: 'stat',
        w: 4,
        h: 4,
        title: 'KV cache (fullest pod)',
        unit: 'percentunit',
        max: 1,
        description: 'KV-cache usage of the fullest pod.',
        targets: [{ expr: `max(kelix_kv_cache_usage_ratio{${S}})`, legend: 'kv' }],
      },
      {
        type: 'stat',
        w: 4,
        h: 4,
        title: 'Generated tokens / s',
        unit: 'none',
        description: 'Generation throughput, all pods.',
        targets: [{ expr: `sum(${rate('kelix_generation_tokens_total')})`, legend: 'tokens/s' }],
      },
    ],
  ],
  [
    'Latency',
    [
      {
        title: 'Time to first token',
        unit: 's',
        description: 'Submit to the first token of the first choice: p50, p90, p99 and mean.',
        targets: [...percentiles('kelix_time_to_first_token_seconds'), mean('kelix_time_to_first_token_seconds')],
      },
      {
        title: 'Inter-token latency',
        unit: 's',
        description: 'Gap between consecutive tokens of one choice.',
        targets: [...percentiles('kelix_inter_token_latency_seconds'), mean('kelix_inter_token_latency_seconds')],
      },
      {
        title: 'End-to-end latency',
        unit: 's',
        description: 'Submit to the end of the request.',
        targets: [...percentiles('kelix_e2e_request_latency_seconds'), mean('kelix_e2e_request_latency_seconds')],
      },
      {
        title: 'Queue time',
        unit: 's',
        description: 'Time waiting for a place in the batch.',
        targets: [...percentiles('kelix_request_queue_time_seconds'), mean('kelix_request_queue_time_seconds')],
      },
      {
        title: 'Time to first token p99 by pod',
        unit: 's',
        description: 'One slow pod shows here before it moves the fleet percentile.',
        targets: [perPodP99('kelix_time_to_first_token_seconds')],
      },
      {
        title: 'Inter-token latency p99 by pod',
        unit: 's',
        description: 'Per-pod decode speed.',
        targets: [perPodP99('kelix_inter_token_latency_seconds')],
      },
    ],
  ],
  [
    'Throughput',
    [
      {
        title: 'Token throughput',
        unit: 'none',
        description: 'Prompt and generated tokens per second (counted when a request finishes), all pods.',
        targets: [
          { expr: `sum(${rate('kelix_prompt_tokens_total')})`, legend: 'prompt tokens/s' },
          { expr: `sum(${rate('kelix_generation_tokens_total')})`, legend: 'generation tokens/s' },
          { expr: `sum(${rate('kelix_image_positions_total')})`, legend: 'image positions/s' },
        ],
      },
      {
        title: 'Generated tokens / s by pod',
        unit: 'none',
        description: 'Generation throughput per pod.',
        targets: [{ expr: `sum by (instance) (${rate('kelix_generation_tokens_total')})`, legend: '{{instance}}' }],
      },
      {
        title: 'Finish reasons',
        unit: 'reqps',
        stack: true,
        description: 'Requests finished per second by reason: stop, length, abort, error, timeout.',
        targets: [
          { expr: `sum by (finish_reason) (${rate('kelix_requests_finished_total')})`, legend: '{{finish_reason}}' },
        ],
      },
      {
        title: 'HTTP responses by status',
        unit: 'reqps',
        stack: true,
        description: 'API responses (routes under /v1) per second by status code.',
        targets: [
          {
            expr: `sum by (status_code) (${rate('kelix_http_request_duration_seconds_count', ', route=~"/v1/.*"')})`,
            legend: '{{status_code}}',
          },
        ],
      },
    ],
  ],
  [
    'Scheduler',
    [
      {
        title: 'Running and waiting by pod',
        unit: 'none',
        description: 'Requests in the batch and in the queue, as of each pod’s last engine step.',
        targets: [
          { expr: `kelix_num_requests_running{${S}}`, legend: 'running {{instance}}' },
          { expr: `kelix_num_requests_waiting{${S}}`, legend: 'waiting {{instance}}' },
        ],
      },
      {
        title: 'KV cache usage by pod',
        unit: 'percentunit',
        max: 1,
        description: 'Fraction of the KV cache in use. Near 1, requests wait or are preempted.',
        targets: [{ expr: `kelix_kv_cache_usage_ratio{${S}}`, legend: '{{instance}}' }],
      },
      {
        title: 'Batch size per step',
        unit: 'none',
        description: 'Sequences per engine step (p50, p99, mean) and tokens computed per step (mean).',
        targets: [
          {
            expr: `histogram_quantile(0.5, sum by (le) (${rate('kelix_step_batch_size_bucket')}))`,
            legend: 'p50 sequences',
          },
          {
            expr: `histogram_quantile(0.99, sum by (le) (${rate('kelix_step_batch_size_bucket')}))`,
            legend: 'p99 sequences',
          },
          { ...mean('kelix_step_batch_size'), legend: 'mean sequences' },
          { ...mean('kelix_step_tokens'), legend: 'mean tokens' },
        ],
      },
      {
        title: 'Engine step duration',
        unit: 's',
        description: 'One scheduler step: schedule, forward pass, update.',
        targets: [...percentiles('kelix_engine_step_duration_seconds'), mean('kelix_engine_step_duration_seconds')],
      },
      {
        title: 'Preemptions / s by pod',
        unit: 'none',
        description: 'Running requests preempted to free KV cache.',
        targets: [{ expr: `sum by (instance) (${rate('kelix_preemptions_total')})`, legend: '{{instance}}' }],
      },
      {
        title: 'Engine steps / s by pod',
        unit: 'none',
        description: 'Engine loop rate; flat at 0 while idle.',
        targets: [
          { expr: `sum by (instance) (${rate('kelix_engine_step_duration_seconds_count')})`, legend: '{{instance}}' },
        ],
      },
    ],
  ],
  [
    'Rejections and aborts',
    [
      {
        title: 'Rejections by reason',
        unit: 'reqps',
        stack: true,
        description: 'Requests refused before they ran (queue full, draining, bad image, context overflow, …).',
        targets: [{ expr: `sum by (reason) (${rate('kelix_requests_rejected_total')})`, legend: '{{reason}}' }],
      },
      {
        title: 'Aborts, errors and timeouts',
        unit: 'reqps',
        description:
          'Requests that ended early: the client left (abort), the engine failed (error), or the deadline passed (timeout).',
        targets: [
          { expr: `sum(${rate('kelix_request_aborts_total')})`, legend: 'aborts' },
          { expr: `sum(${rate('kelix_requests_finished_total', ', finish_reason="error"')})`, legend: 'errors' },
          { expr: `sum(${rate('kelix_requests_finished_total', ', finish_reason="timeout"')})`, legend: 'timeouts' },
        ],
      },
    ],
  ],
  [
    'Images',
    [
      {
        title: 'Image preprocessing',
        unit: 's',
        description: 'Decode, resize and normalise one image.',
        targets: [...percentiles('kelix_image_preprocess_seconds')],
      },
      {
        title: 'Visual tokenization',
        unit: 's',
        description: 'One image through the visual tokenizer (cache misses only).',
        targets: [...percentiles('kelix_visual_tokenize_seconds')],
      },
      {
        title: 'Visual-token cache hit ratio',
        unit: 'percentunit',
        max: 1,
        description: 'Share of images whose visual tokens came from the cache.',
        targets: [
          {
            expr: `sum(${rate('kelix_visual_token_cache_hits_total')}) / (sum(${rate('kelix_visual_token_cache_hits_total')}) + sum(${rate('kelix_visual_token_cache_misses_total')}))`,
            legend: 'hit ratio',
          },
        ],
      },
    ],
  ],
  [
    'Image generation',
    [
      {
        title: 'Images generated / s',
        unit: 'none',
        description: 'Images delivered per second, all pods.',
        targets: [{ expr: `sum(${rate('kelix_images_generated_total')})`, legend: 'images/s' }],
      },
      {
        title: 'Image request latency',
        unit: 's',
        description: 'Submit to the last image of an image request.',
        targets: [...percentiles('kelix_image_request_latency_seconds')],
      },
      {
        title: 'Denoise step duration',
        unit: 's',
        description: 'One batched DiT step; chat decode steps interleave with these.',
        targets: [...percentiles('kelix_denoise_step_duration_seconds')],
      },
    ],
  ],
  [
    'Request lengths',
    [
      {
        type: 'heatmap',
        title: 'Prompt length',
        unit: 'none',
        description: 'Prompt positions per finished request (images included).',
        targets: [lengthHeatmap('kelix_request_prompt_tokens')],
      },
      {
        type: 'heatmap',
        title: 'Generation length',
        unit: 'none',
        description: 'Generated tokens per finished request.',
        targets: [lengthHeatmap('kelix_request_generation_tokens')],
      },
    ],
  ],
  [
    'Process',
    [
      {
        w: 8,
        title: 'CPU by pod',
        unit: 'percentunit',
        description: 'CPU seconds per second of the server process (all threads, engine worker included).',
        targets: [{ expr: `${rate('kelix_process_cpu_seconds_total')}`, legend: '{{instance}}' }],
      },
      {
        w: 8,
        title: 'Resident memory by pod',
        unit: 'bytes',
        description: 'Resident set size of the server process.',
        targets: [{ expr: `kelix_process_resident_memory_bytes{${S}}`, legend: '{{instance}}' }],
      },
      {
        w: 8,
        title: 'Event loop lag p99 by pod',
        unit: 's',
        description: 'HTTP-thread event loop delay; high values delay every stream.',
        targets: [{ expr: `kelix_nodejs_eventloop_lag_p99_seconds{${S}}`, legend: '{{instance}}' }],
      },
    ],
  ],
]

function panel(spec: PanelSpec, id: number, x: number, y: number) {
  const type = spec.type ?? 'timeseries'
  const defaults: Record<string, unknown> = { unit: spec.unit }
  if (spec.max !== undefined) Object.assign(defaults, { min: 0, max: spec.max })
  if (type === 'timeseries')
    defaults.custom = {
      lineWidth: 1,
      fillOpacity: spec.stack ? 30 : 10,
      stacking: { mode: spec.stack ? 'normal' : 'none', group: 'A' },
    }
  return {
    id,
    type,
    title: spec.title,
    description: spec.description,
    datasource: DS,
    gridPos: { h: spec.h ?? 8, w: spec.w ?? 12, x, y },
    fieldConfig: { defaults, overrides: [] },
    options: panelOptions(type),
    targets: spec.targets.map((t, i) => ({
      datasource: DS,
      refId: String.fromCharCode(65 + i),
      expr: t.expr,
      legendFormat: t.legend,
      ...(t.format ? { format: t.format } : {}),
    })),
  }
}

function panelOptions(type: string) {
  if (type === 'stat')
    return {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      colorMode: 'value',
      graphMode: 'area',
      textMode: 'auto',
    }
  if (type === 'heatmap')
    return {
      calculate: false,
      cellGap: 1,
      color: { mode: 'scheme', scheme: 'Oranges', steps: 64 },
      yAxis: { axisPlacement: 'left' },
      legend: { show: true },
      tooltip: { show: true },
    }
  return {
    legend: { displayMode: 'list', placement: 'bottom', showLegend: true },
    tooltip: { mode: 'multi', sort: 'desc' },
  }
}

function layout() {
  const panels: object[] = []
  let id = 1
  let y = 0
  for (const [title, specs] of ROWS) {
    panels.push({ id: id++, type: 'row', title, collapsed: false, panels: [], gridPos: { h: 1, w: 24, x: 0, y } })
    y += 1
    let x = 0
    let rowHeight = 0
    for (const spec of specs) {
      const w = spec.w ?? 12
      if (x + w > 24) {
        x = 0
        y += rowHeight
        rowHeight = 0
      }
      panels.push(panel(spec, id++, x, y))
      x += w
      rowHeight = Math.max(rowHeight, spec.h ?? 8)
    }
    y += rowHeight
  }
  return panels
}

function variable(name: string, label: string, query: string, all: boolean) {
  return {
    name,
    label,
    type: 'query',
    datasource: DS,
    definition: query,
    query: { query, refId: `${name}-variable` },
    refresh: 2,
    sort: 1,
    hide: 0,
    multi: all,
    includeAll: all,
    ...(all ? { allValue: '.*', current: { text: 'All', value: '$__all' } } : {}),
  }
}

export function buildDashboard() {
  return {
    uid: 'kelix-serve',
    title: 'Kelix Serve',
    description:
      'Latency, throughput, scheduler, rejections, images and process metrics of Kelix Serve. Metrics: docs/metrics.md.',
    tags: ['kelix', 'llm', 'inference'],
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-1h', to: 'now' },
    timezone: 'browser',
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        },
      ],
    },
    templating: {
      list: [
        {
          name: 'datasource',
          label: 'Data source',
          type: 'datasource',
          query: 'prometheus',
          refresh: 1,
          hide: 0,
          includeAll: false,
          multi: false,
          regex: '',
        },
        variable('job', 'Job', 'label_values(kelix_engine_up, job)', false),
        variable('instance', 'Pod', 'label_values(kelix_engine_up{job=~"$job"}, instance)', true),
      ],
    },
    panels: layout(),
  }
}

export function dashboardJson(): string {
  return `${JSON.stringify(buildDashboard(), null, 2)}\n`
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = fileURLToPath(new URL('../../', import.meta.url))
  for (const file of DASHBOARD_FILES) {
    writeFileSync(root + file, dashboardJson())
    console.log(`wrote ${file}`)
  }
}
