/**
 * Serving benchmark: the real server over HTTP with SSE streaming, side by
 * side with the same server at max_num_seqs=1 and with the raw engine (no
 * HTTP, no scheduler) running the same closed-loop workload in this process.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { Engine } from '../src/engine/engine.js'
import type { KelixModel } from '../src/engine/model.js'
import { GREEDY, type ChatMessage } from '../src/engine/types.js'
import { closedLoop, openLoop, summarise, type LoadRequest, type LoadSummary } from './load.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const MAX_TOKENS = 32

export interface ServeRow extends Partial<LoadSummary> {
  target: 'server' | 'server max_num_seqs=1' | 'raw engine'
  prompt: 'text' | 'image' | 'text + image gen'
  load: string
  concurrency: number
  outputTokensPerSecond: number
}

export interface ServeResult {
  rows: ServeRow[]
  eventLoopDelayP99Ms: number | undefined
  /** Image generation alone, one request at a time. */
  imagesPerMinute: number
}

/** Image requests one after another until `stop()`; resolves with how many images came back. */
function imageLoad(baseUrl: string, model: string) {
  let stopped = false
  let images = 0
  const done = (async () => {
    for (let i = 0; !stopped; i++) {
      const res = await fetch(`${baseUrl}/v1/images/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, prompt: `Image ${i}: a lighthouse at dusk`, seed: i }) })
      if (res.ok) images += ((await res.json()) as { data: unknown[] }).data.length
    }
  })()
  return { stop: async () => ((stopped = true), await done, images) }
}

function textRequest(i: number): LoadRequest {
  return { messages: [{ role: 'user', content: `Request ${i}: tell me about the numbers operators watch in Grafana.` }], maxTokens: MAX_TOKENS }
}

function imageRequest(png: Uint8Array): (i: number) => LoadRequest {
  const url = `data:image/png;base64,${Buffer.from(png).toString('base64')}`
  return (i) => ({
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text: `Image request ${i}: what is in it?` }] }],
    maxTokens: MAX_TOKENS,
  })
}

export async function benchServe(model: KelixModel, png: Uint8Array, opts: { quick: boolean }): Promise<ServeResult> {
  const concurrencies = [1, 4, 16, 32]
  const requestsAt = (c: number) => (opts.quick ? Math.max(4, c) : Math.max(8, 2 * c))
  const imEnd = model.config.special_tokens.im_end
  // Ban <|im_end|> so every answer has exactly MAX_TOKENS tokens, in every target.
  const extra = { logit_bias: { [imEnd]: -100 } }
  const rows: ServeRow[] = []
  buildServer()

  for (const c of concurrencies) rows.push({ target: 'raw engine', prompt: 'text', load: 'closed', concurrency: c, ...(await rawClosedLoop(model, c, requestsAt(c))) })

  let eventLoopDelayP99Ms: number | undefined
  let imagesPerMinute = Number.NaN
  await withServer({ KELIX_MAX_NUM_SEQS: '32' }, async (baseUrl) => {
    const load = { baseUrl, model: model.config.name, extra }
    await closedLoop({ ...load, request: textRequest }, 2, 4) // warm-up
    for (const c of concurrencies) {
      if (c === 32) await eventLoopP99(baseUrl) // resets the server's delay histogram
      rows.push({ target: 'server', prompt: 'text', load: 'closed', concurrency: c, ...summarise(await closedLoop({ ...load, request: textRequest }, c, requestsAt(c))) })
      if (c === 32) eventLoopDelayP99Ms = await eventLoopP99(baseUrl)
    }
    for (const c of [4, 16]) rows.push({ target: 'server', prompt: 'image', load: 'closed', concurrency: c, ...summarise(await closedLoop({ ...load, request: imageRequest(png) }, c, requestsAt(c))) })
    const images = imageLoad(baseUrl, model.config.name)
    const imageStarted = performance.now()
    await new Promise((resolve) => setTimeout(resolve, opts.quick ? 3000 : 10_000))
    imagesPerMinute = ((await images.stop()) * 60_000) / (performance.now() - imageStarted)
    const beside = imageLoad(baseUrl, model.config.name)
    rows.push({ target: 'server', prompt: 'text + image gen', load: 'closed', concurrency: 4, ...summarise(await closedLoop({ ...load, request: textRequest }, 4, requestsAt(4))) })
    await beside.stop()
    const rate = opts.quick ? 4 : 8
    rows.push({ target: 'server', prompt: 'text', load: `open ${rate}/s`, concurrency: 0, ...summarise(await openLoop({ ...load, request: textRequest }, rate, opts.quick ? 2000 : 5000)) })
  })
  await withServer({ KELIX_MAX_NUM_SEQS: '1' }, async (baseUrl) => {
    const load = { baseUrl, model: model.config.name, extra, request: textRequest }
    for (const c of [1, 32]) rows.push({ target: 'server max_num_seqs=1', prompt: 'text', load: 'closed', concurrency: c, ...summarise(await closedLoop(load, c, opts.quick ? 8 : 32)) })
  })
  return { rows, eventLoopDelayP99Ms, imagesPerMinute }
}

/** The raw engine under the same closed loop: `concurrency` sequences in flight, refilled as they finish. */
async function rawClosedLoop(model: KelixModel, concurrency: number, total: number): Promise<{ outputTokensPerSecond: number; decodeRate: number }> {
  const engine = new Engine(model)
  const sampling = { ...GREEDY, logitBias: new Map([[model.config.special_tokens.im_end, -100]]) }
  let next = 0
  let tokens = 0
  const active = new Set<string>()
  const add = async () => {
    const i = next++
    const { messages } = textRequest(i)
    const prompt = await engine.preparePrompt(messages as ChatMessage[], { addGenerationPrompt: true })
    engine.add(`r${i}`, prompt, { sampling, maxNewTokens: MAX_TOKENS, stop: [], stopTokenIds: [] })
    active.add(`r${i}`)
  }
  const started = performance.now()
  let decodeSteps = 0
  let decodeMs = 0
  while (next < total || active.size > 0) {
    while (active.size < concurrency && next < total) await add()
    const plan = [...active].map((id) => {
      const seq = engine.get(id)
      const cachedBlocks = engine.prefixHit(id)
      return { id, cachedBlocks, numBlocks: (seq?.blocks.length ?? 1) - (seq?.numComputed ?? 0) - cachedBlocks }
    })
    const stepStart = performance.now()
    const outputs = await engine.step(plan)
    if (plan.every((p) => p.numBlocks === 1)) {
      decodeSteps++
      decodeMs += performance.now() - stepStart
    }
    for (const [id, out] of outputs) {
      tokens += out.tokenIds.length
      if (out.finishReason !== undefined) {
        engine.release(id)
        active.delete(id)
      }
    }
  }
  return { outputTokensPerSecond: tokens / ((performance.now() - started) / 1000), decodeRate: decodeSteps / (decodeMs / 1000) }
}

/** The server as users run it: compiled, `node dist/server/main.js`. */
function buildServer(): void {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' })
}

async function withServer(env: Record<string, string>, body: (baseUrl: string) => Promise<void>): Promise<void> {
  const port = await freePort()
  const child = spawn(process.execPath, ['dist/server/main.js'], {
    cwd: ROOT,
    env: { ...process.env, KELIX_PORT: String(port), KELIX_HOST: '127.0.0.1', KELIX_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  const baseUrl = `http://127.0.0.1:${port}`
  try {
    await waitReady(baseUrl, child)
    await body(baseUrl)
  } finally {
    child.kill('SIGTERM')
    await new Promise((resolve) => child.once('exit', resolve))
  }
}

async function waitReady(baseUrl: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`the server exited with code ${child.exitCode}`)
    const ok = await fetch(`${baseUrl}/health/ready`).then((r) => r.ok, () => false)
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error('the server did not become ready in 60 s')
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

/** The server's event-loop delay p99 since the previous scrape (prom-client resets it per collection), ms. */
async function eventLoopP99(baseUrl: string): Promise<number | undefined> {
  const text = await fetch(`${baseUrl}/metrics`).then((r) => (r.ok ? r.text() : ''))
  const line = text.split('\n').find((l) => l.startsWith('kelix_nodejs_eventloop_lag_p99_seconds '))
  return line === undefined ? undefined : Number(line.split(' ')[1]) * 1000
}
