/**
 * A streaming load generator for an OpenAI-compatible server: closed loop at a
 * fixed concurrency, or open loop at a fixed arrival rate. Every request streams
 * (SSE); times are taken on arrival of each content chunk.
 */
import { Agent, request } from 'node:http'

export interface LoadRequest {
  /** Chat messages in OpenAI shape. */
  messages: unknown[]
  maxTokens: number
}

export interface RequestSample {
  ok: boolean
  status: number
  ttftMs: number | undefined
  itlMs: number[]
  e2eMs: number
  /** Output tokens, as the final usage chunk reports them (a slow reader may get several in one chunk). */
  tokens: number
  /** From the first content chunk to the last, ms. */
  decodeMs: number
}

export interface LoadOptions {
  baseUrl: string
  model: string
  /** Made fresh for request `i`. */
  request: (i: number) => LoadRequest
  /** Extra body fields (e.g. logit_bias to keep lengths fixed). */
  extra?: Record<string, unknown>
}

/** Runs `total` requests with `concurrency` in flight at all times. */
export async function closedLoop(
  opts: LoadOptions,
  concurrency: number,
  total: number,
): Promise<{ samples: RequestSample[]; wallMs: number }> {
  const samples: RequestSample[] = []
  let next = 0
  const started = performance.now()
  const worker = async () => {
    while (next < total) samples.push(await streamOne(opts, next++))
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return { samples, wallMs: performance.now() - started }
}

/** Starts requests at `ratePerSecond` (Poisson arrivals, seeded) for `durationMs`, then waits for all. */
export async function openLoop(
  opts: LoadOptions,
  ratePerSecond: number,
  durationMs: number,
): Promise<{ samples: RequestSample[]; wallMs: number }> {
  const started = performance.now()
  const inFlight: Array<Promise<RequestSample>> = []
  let state = 12345
  const uniform = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0
    return (state + 1) / 0x1_0000_0001
  }
  let at = 0
  for (let i = 0; at < durationMs; i++) {
    const wait = started + at - performance.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    inFlight.push(streamOne(opts, i))
    at += (-Math.log(uniform()) / ratePerSecond) * 1000
  }
  const samples = await Promise.all(inFlight)
  return { samples, wallMs: performance.now() - started }
}

/**
 * Keep-alive connections, as fetch keeps them. node:http rather than fetch:
 * fetch's web streams cost the load generator 2-3x more CPU per chunk, and
 * on a small machine the load generator shares the cores with the server.
 */
const agent = new Agent({ keepAlive: true })

function streamOne(opts: LoadOptions, i: number): Promise<RequestSample> {
  const { messages, maxTokens } = opts.request(i)
  const start = performance.now()
  const body = JSON.stringify({
    model: opts.model,
    messages,
    max_tokens: maxTokens,
    stream: true,
    stream_options: { include_usage: true },
    temperature: 0,
    ...opts.extra,
  })
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
    const req = request(new URL('/v1/chat/completions', opts.baseUrl), { method: 'POST', agent, headers }, (res) => {
      res.on('error', reject)
      const status = res.statusCode ?? 0
      if (status < 200 || status >= 300) {
        res.resume()
        res.on('end', () =>
          resolve({
            ok: false,
            status,
            ttftMs: undefined,
            itlMs: [],
            e2eMs: performance.now() - start,
            tokens: 0,
            decodeMs: 0,
          }),
        )
        return
      }
      const timer = new ContentTimer(start)
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => timer.feed(chunk))
      res.on('end', () => resolve({ ok: true, status, ...timer.result(), e2eMs: performance.now() - start }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** Splits an SSE body into events, times the arrival of each content chunk and reads the final usage. */
class ContentTimer {
  private readonly itlMs: number[] = []
  private ttftMs: number | undefined
  private first = 0
  private last = 0
  private chunks = 0
  private completionTokens: number | undefined
  private buffered = ''

  constructor(private readonly start: number) {}

  feed(chunk: string): void {
    this.buffered += chunk
    let end: number
    while ((end = this.buffered.indexOf('\n\n')) >= 0) {
      const event = this.buffered.slice(0, end)
      this.buffered = this.buffered.slice(end + 2)
      if (!event.startsWith('data: ') || event === 'data: [DONE]') continue
      const parsed = JSON.parse(event.slice(6)) as {
        choices?: Array<{ delta?: { content?: string } }>
        usage?: { completion_tokens: number } | null
      }
      if (parsed.usage != null) this.completionTokens = parsed.usage.completion_tokens
      const content = parsed.choices?.[0]?.delta?.content
      if (content === undefined || content === '') continue
      const now = performance.now()
      if (this.ttftMs === undefined) {
        this.ttftMs = now - this.start
        this.first = now
      } else this.itlMs.push(now - this.last)
      this.last = now
      this.chunks++
    }
  }

  result(): Pick<RequestSample, 'ttftMs' | 'itlMs' | 'tokens' | 'decodeMs'> {
    return {
      ttftMs: this.ttftMs,
      itlMs: this.itlMs,
      tokens: this.completionTokens ?? this.chunks,
      decodeMs: this.last - this.first,
    }
  }
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

export interface LoadSummary {
  requests: number
  failed: number
  outputTokensPerSecond: number
  ttftP50Ms: number
  ttftP99Ms: number
  itlP50Ms: number
  itlP99Ms: number
  e2eP50Ms: number
  e2eP99Ms: number
  /** Mean tokens per second within a request, after its first token. */
  decodeRate: number
  /** Output tokens that reached the client merged with another token in one chunk (the reader was behind). */
  coalescedTokens: number
}

export function summarise(run: { samples: RequestSample[]; wallMs: number }): LoadSummary {
  const ok = run.samples.filter((s) => s.ok)
  const tokens = ok.reduce((a, s) => a + s.tokens, 0)
  const ttft = ok.flatMap((s) => (s.ttftMs === undefined ? [] : [s.ttftMs]))
  const itl = ok.flatMap((s) => s.itlMs)
  const rates = ok.filter((s) => s.tokens > 1 && s.decodeMs > 0).map((s) => (s.tokens - 1) / (s.decodeMs / 1000))
  return {
    requests: run.samples.length,
    failed: run.samples.length - ok.length,
    outputTokensPerSecond: tokens / (run.wallMs / 1000),
    ttftP50Ms: percentile(ttft, 50),
    ttftP99Ms: percentile(ttft, 99),
    itlP50Ms: percentile(itl, 50),
    itlP99Ms: percentile(itl, 99),
    e2eP50Ms: percentile(
      ok.map((s) => s.e2eMs),
      50,
    ),
    e2eP99Ms: percentile(
      ok.map((s) => s.e2eMs),
      99,
    ),
    decodeRate: rates.reduce((a, b) => a + b, 0) / Math.max(1, rates.length),
    coalescedTokens: ok.reduce((a, s) => a + s.tokens - (s.itlMs.length + (s.ttftMs === undefined ? 0 : 1)), 0),
  }
}
