/**
 * Metrics from the whole server: a known workload through real HTTP, then
 * /metrics read directly and through a real Prometheus scraping the server.
 */
import t from 'tap'
import { createMetrics } from '../../src/server/metrics.js'
import { startPrometheus } from '../deploy/prometheus-harness.js'
import { which } from '../deploy/helpers.js'
import { EngineEvents, tee } from '../helpers/engine-events.js'
import { hello, readUntil, serve, tinyEngine } from '../routes/serve.js'

const metrics = createMetrics()
// The tests wait on what the engine reports (after the metrics have taken it), not on a time.
const events = new EngineEvents()
const engine = await tinyEngine(t, { observer: tee(metrics.observer, events) })

/** The value of an unlabelled sample, or of the sample with exactly these labels. */
function sample(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `))
  if (line === undefined) throw new Error(`no sample ${name}${labels}`)
  return Number(line.slice(line.lastIndexOf(' ') + 1))
}

/** The value of a sample, 0 while it has not been observed yet. */
const counted = (text: string, name: string, labels = '') =>
  text.split('\n').some((l) => l.startsWith(`${name}${labels} `)) ? sample(text, name, labels) : 0

t.test(
  'after a known workload /metrics counts exactly the requests and the tokens the responses reported',
  async (t) => {
    const { base, post } = await serve(t, engine, { metrics })
    // The registry is the file's: count what this workload adds to it.
    const before = await (await fetch(`${base}/metrics`)).text()
    const added = (text: string, name: string, labels = '') =>
      sample(text, name, labels) - counted(before, name, labels)
    let prompt = 0
    let completion = 0
    for (const extra of [{}, { max_tokens: 7 }, { n: 2, max_tokens: 3 }, { max_tokens: 5, temperature: 1, seed: 4 }]) {
      const body = (await (await post(hello(extra))).json()) as {
        usage: { prompt_tokens: number; completion_tokens: number }
      }
      prompt += body.usage.prompt_tokens
      completion += body.usage.completion_tokens
    }
    const streamed = await post(hello({ stream: true, stream_options: { include_usage: true }, max_tokens: 6 }))
    const usageChunk = (await streamed.text())
      .split('\n\n')
      .filter((e) => e.startsWith('data: {'))
      .map((e) => JSON.parse(e.slice(6)) as { usage: { prompt_tokens: number; completion_tokens: number } | null })
      .at(-1)
    prompt += usageChunk?.usage?.prompt_tokens ?? Number.NaN
    completion += usageChunk?.usage?.completion_tokens ?? Number.NaN
    const bad = await post(hello({ max_tokens: 'many' }))
    t.equal(bad.status, 400)

    const text = await (await fetch(`${base}/metrics`)).text()
    const finished = ['stop', 'length'].reduce(
      (sum, reason) => sum + added(text, 'kelix_requests_finished_total', `{finish_reason="${reason}"}`),
      0,
    )
    t.equal(finished, 5, 'five requests finished')
    t.equal(added(text, 'kelix_prompt_tokens_total'), prompt, 'prompt tokens equal the sum of usage.prompt_tokens')
    t.equal(
      added(text, 'kelix_generation_tokens_total'),
      completion,
      'generation tokens equal the sum of usage.completion_tokens',
    )
    t.equal(added(text, 'kelix_time_to_first_token_seconds_count'), 5)
    t.equal(
      added(
        text,
        'kelix_http_request_duration_seconds_count',
        '{route="/v1/chat/completions",method="POST",status_code="200"}',
      ),
      5,
    )
    t.equal(
      added(
        text,
        'kelix_http_request_duration_seconds_count',
        '{route="/v1/chat/completions",method="POST",status_code="400"}',
      ),
      1,
    )
    t.equal(sample(text, 'kelix_engine_up'), 1)
    t.equal(sample(text, 'kelix_num_requests_running'), 0)
  },
)

t.test('the running gauge returns to 0 when a client leaves mid-stream and the engine goes idle', async (t) => {
  const { base, post } = await serve(t, engine, { metrics })
  const controller = new AbortController()
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(hello({ max_tokens: 3000, logit_bias: { 502: -100 }, stream: true })),
    signal: controller.signal,
  })
  // A content chunk comes out of a step, which is reported (the running gauge set) before its tokens are delivered.
  await readUntil(res, (text) => text.includes('"delta":{"content":"'))
  const gauge = async () => sample(await (await fetch(`${base}/metrics`)).text(), 'kelix_num_requests_running')
  t.equal(await gauge(), 1, 'one request runs')
  // The abort reaches the worker at its next step boundary; the worker then reports its gauges.
  const idle = events.next('gauges', (g) => g.running === 0)
  controller.abort()
  await idle
  t.equal(await gauge(), 0)
  t.equal(sample(await (await fetch(`${base}/metrics`)).text(), 'kelix_num_requests_waiting'), 0)
  await post(hello())
})

t.test('an image stream the client abandons counts in kelix_request_aborts_total', async (t) => {
  const { base } = await serve(t, engine, { metrics })
  const aborts = async () => sample(await (await fetch(`${base}/metrics`)).text(), 'kelix_request_aborts_total')
  const before = await aborts()
  const controller = new AbortController()
  const res = await fetch(`${base}/v1/images/generations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'a lighthouse', stream: true, seed: 3 }),
    signal: controller.signal,
  })
  t.equal(res.status, 200)
  await res.body?.getReader().read()
  // The server notices the closed socket, then the request ends as aborted.
  const aborted = events.next('imageAborted')
  controller.abort()
  await aborted
  t.equal(await aborts(), before + 1)
})

const prometheus = which('prometheus')

t.test(
  'a real Prometheus scraping the server reads the generation token count',
  { skip: prometheus === undefined ? 'prometheus is not installed (Debian package prometheus)' : false },
  async (t) => {
    const { base, post } = await serve(t, engine, { metrics })
    const before = sample(await (await fetch(`${base}/metrics`)).text(), 'kelix_generation_tokens_total')
    await post(hello({ max_tokens: 9 }))
    const prom = await startPrometheus({ binary: prometheus as string, targets: [base.replace('http://', '')] })
    t.teardown(() => prom.close())
    await prom.waitForScrapes(2)
    const [result] = await prom.query('kelix_generation_tokens_total')
    t.equal(Number(result?.value[1]), before + 9)
  },
)
