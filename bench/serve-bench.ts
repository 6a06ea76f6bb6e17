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
import { closedLoop, openLoop, summarise, type LoadOptions, type LoadRequest, type LoadSummary } from './load.js'
import { median } from './stats.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

export interface ServeRow extends Partial<LoadSummary> {
  target: 'server' | 'server max_num_seqs=1' | 'raw engine'
  prompt: 'text' | 'image' | 'text + image gen'
  load: string
  concurrency: number
  outputTokensPerSecond: number
}

/** One round of the target comparisons, every side measured back to back. */
export interface TargetRound {
  answerTokens: number
  /** Output tokens/s at concurrency 32: the server, the server with max_num_seqs=1, the raw engine. */
  server32: number
  single32: number
  raw32: number
  /** Decode tokens/s of one request alone (after its first token): the server, the raw engine. */
  serverC1Decode: number
  rawC1Decode: number
}

/** A target ratio over the rounds: the median, and the spread as the lowest and highest round. */
export interface TargetRatio {
  target: string
  answerTokens: number
  median: number
  min: number
  max: number
}

export interface ServeResult {
  rows: ServeRow[]
  rounds: TargetRound[]
  ratios: TargetRatio[]
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
      const res = await fetch(`${baseUrl}/v1/images/generations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, prompt: `Image ${i}: a lighthouse at dusk`, seed: i }),
      })
      if (res.ok) images += ((await res.json()) as { data: unknown[] }).data.length
    }
  })()
  return { stop: async () => ((stopped = true), await done, images) }
}

function textRequest(answerTokens: number): (i: number) => LoadRequest {
  return (i) => ({
    messages: [{ role: 'user', content: `Request ${i}: tell me about the numbers operators watch in Grafana.` }],
    maxTokens: answerTokens,
  })
}

function imageRequest(png: Uint8Array): (i: number) => LoadRequest {
  const url = `data:image/png;base64,${Buffer.from(png).toString('base64')}`
  return (i) => ({
    messages: [
      {
        role: 'user',
        content: [
          { type: 'image_url', image_url: { url } },
          { type: 'text', text: `Image request ${i}: what is in it?` },
        ],
      },
    ],
    maxTokens: TABLE_ANSWER_TOKENS,
  })
}

/**
 * The descriptive table runs each configuration once. The targets are ratios
 * between configurations, and this machine's speed drifts by ±20% within
 * minutes, so they are measured in rounds: both servers stay up side by side
 * (an idle one costs no CPU), each round measures every side back to back,
 * and each ratio is the median over rounds.
 */
export async function benchServe(
  model: KelixModel,
  png: Uint8Array,
  opts: { quick: boolean; rounds: number },
): Promise<ServeResult> {
  const concurrencies = [1, 4, 16, 32]
  const requestsAt = (c: number) => (opts.quick ? Math.max(4, c) : Math.max(8, 2 * c))
  const imEnd = model.config.special_tokens.im_end
  // Ban <|im_end|> so every answer has exactly the tokens asked for, in every target.
  const extra = { logit_bias: { [imEnd]: -100 } }
  const engine = new Engine(model)
  const rows: ServeRow[] = []
  buildServer()

  let eventLoopDelayP99Ms: number | undefined
  let imagesPerMinute = Number.NaN
  const rounds: TargetRound[] = []
  await withServers([{ KELIX_MAX_NUM_SEQS: '32' }, { KELIX_MAX_NUM_SEQS: '1' }], async ([batchedUrl, singleUrl]) => {
    const batched = { baseUrl: batchedUrl as string, model: model.config.name, extra }
    const single = { baseUrl: singleUrl as string, model: model.config.name, extra }
    const text = textRequest(TABLE_ANSWER_TOKENS)
    await closedLoop({ ...batched, request: text }, 4, 16) // warm-up
    await closedLoop({ ...single, request: text }, 2, 4)
    await rawClosedLoop(engine, 4, 16, TABLE_ANSWER_TOKENS)

    for (const c of concurrencies)
      rows.push({
        target: 'raw engine',
        prompt: 'text',
        load: 'closed',
        concurrency: c,
        ...(await rawClosedLoop(engine, c, requestsAt(c), TABLE_ANSWER_TOKENS)),
      })
    for (const c of concurrencies) {
      if (c === 32) await eventLoopP99(batched.baseUrl) // resets the server's delay histogram
      rows.push({
        target: 'server',
        prompt: 'text',
        load: 'closed',
        concurrency: c,
        ...summarise(await closedLoop({ ...batched, request: text }, c, requestsAt(c))),
      })
      if (c === 32) eventLoopDelayP99Ms = await eventLoopP99(batched.baseUrl)
    }
    for (const c of [4, 16])
      rows.push({
        target: 'server',
        prompt: 'image',
        load: 'closed',
        concurrency: c,
        ...summarise(await closedLoop({ ...batched, request: imageRequest(png) }, c, requestsAt(c))),
      })
    const images = imageLoad(batched.baseUrl, model.config.name)
    const imageStarted = performance.now()
    await new Promise((resolve) => setTimeout(resolve, opts.quick ? 3000 : 10_000))
    imagesPerMinute = ((await images.stop()) * 60_000) / (performance.now() - imageStarted)
    const beside = imageLoad(batched.baseUrl, model.config.name)
    rows.push({
      target: 'server',
      prompt: 'text + image gen',
      load: 'closed',
      concurrency: 4,
      ...summarise(await closedLoop({ ...batched, request: text }, 4, requestsAt(4))),
    })
    await beside.stop()
    const rate = opts.quick ? 4 : 8
    rows.push({
      target: 'server',
      prompt: 'text',
      load: `open ${rate}/s`,
      concurrency: 0,
      ...summarise(await openLoop({ ...batched, request: text }, rate, opts.quick ? 2000 : 5000)),
    })
    for (const c of [1, 32])
      rows.push({
        target: 'server max_num_seqs=1',
        prompt: 'text',
        load: 'closed',
        concurrency: c,
        ...summarise(await closedLoop({ ...single, request: text }, c, opts.quick ? 8 : 32)),
      })

    for (const answerTokens of TARGET_ANSWER_TOKENS) {
      const request = textRequest(answerTokens)
      for (let r = 0; r < opts.rounds; r++) {
        rounds.push({
          answerTokens,
          raw32: (await rawClosedLoop(engine, 32, 64, answerTokens)).outputTokensPerSecond,
          server32: summarise(await closedLoop({ ...batched, request }, 32, 64)).outputTokensPerSecond,
          single32: summarise(await closedLoop({ ...single, request }, 32, 32)).outputTokensPerSecond,
          ...(await c1DecodePairs(engine, { ...batched, request }, answerTokens)),
        })
      }
    }
  })
  return { rows, rounds, ratios: targetRatios(rounds), eventLoopDelayP99Ms, imagesPerMinute }
}

/**
 * Decode rate of one request alone, raw engine and server alternating request
 * by request, so the machine's drift hits both sides alike.
 */
async function c1DecodePairs(
  engine: Engine,
  load: LoadOptions,
  answerTokens: number,
): Promise<Pick<TargetRound, 'rawC1Decode' | 'serverC1Decode'>> {
  let raw = 0
  let server = 0
  for (let pair = 0; pair < C1_PAIRS; pair++) {
    raw += (await rawClosedLoop(engine, 1, 1, answerTokens)).decodeRate
    server += summarise(await closedLoop(load, 1, 1)).decodeRate
  }
  return { rawC1Decode: raw / C1_PAIRS, serverC1Decode: server / C1_PAIRS }
}
const C1_PAIRS = 8

/** Answer lengths of the descriptive table, and of the target rounds. */
const TABLE_ANSWER_TOKENS = 32
const TARGET_ANSWER_TOKENS = [32, 128]

const TARGETS: ReadonlyArray<{ target: string; ratio: (r: TargetRound) => number }> = [
  { target: 'c32 server vs max_num_seqs=1 server (≥ 5×)', ratio: (r) => r.server32 / r.single32 },
  { target: 'c32 server vs raw engine (≥ 0.85)', ratio: (r) => r.server32 / r.raw32 },
  { target: 'c1 decode rate, server vs raw engine (≥ 0.90)', ratio: (r) => r.serverC1Decode / r.rawC1Decode },
]

function targetRatios(rounds: readonly TargetRound[]): TargetRatio[] {
  return TARGET_ANSWER_TOKENS.flatMap((answerTokens) => {
    const mine = rounds.filter((r) => r.answerTokens === answerTokens)
    return TARGETS.map(({ target, ratio }) => {
      const values = mine.map(ratio).sort((a, b) => a - b)
      return {
        target,
        answerTokens,
        median: median(values),
        min: values[0] ?? Number.NaN,
        max: values.at(-1) ?? Number.NaN,
      }
    })
  })
}

/**
 * The raw engine under the same closed loop: `concurrency` sequences in
 * flight, refilled as they finish, admitted with the prefix cache as the
 * server's scheduler admits them. One engine serves every call, so its
 * prefix cache is as warm as a running server's.
 */
async function rawClosedLoop(
  engine: Engine,
  concurrency: number,
  total: number,
  answerTokens: number,
): Promise<{ outputTokensPerSecond: number; decodeRate: number }> {
  const model = engine.model
  const sampling = { ...GREEDY, logitBias: new Map([[model.config.special_tokens.im_end, -100]]) }
  const request = textRequest(answerTokens)
  let next = 0
  let tokens = 0
  const active = new Set<string>()
  const add = async () => {
    const { messages } = request(next++)
    const prompt = await engine.preparePrompt(messages as ChatMessage[], { addGenerationPrompt: true })
    const id = `raw-${rawSequences++}` // unique across calls: they share the engine
    engine.add(id, prompt, { sampling, maxNewTokens: answerTokens, stop: [], stopTokenIds: [] })
    active.add(id)
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
  return {
    outputTokensPerSecond: tokens / ((performance.now() - started) / 1000),
    decodeRate: decodeSteps / (decodeMs / 1000),
  }
}
let rawSequences = 0

/** The server as users run it: compiled, `node dist/server/main.js`. */
export function buildServer(): void {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {
    cwd: ROOT,
    stdio: 'inherit',
  })
}

/** Starts one server per environment, side by side; stops them all after `body`. */
async function withServers(
  envs: ReadonlyArray<Record<string, string>>,
  body: (baseUrls: string[]) => Promise<void>,
): Promise<void> {
  const children: ChildProcess[] = []
  try {
    const baseUrls = await Promise.all(
      envs.map(async (env) => {
        const port = await freePort()
        const child = spawn(process.execPath, ['dist/server/main.js'], {
          cwd: ROOT,
          env: { ...process.env, KELIX_PORT: String(port), KELIX_HOST: '127.0.0.1', KELIX_LOG_LEVEL: 'warn', ...env },
          stdio: ['ignore', 'inherit', 'inherit'],
        })
        children.push(child)
        const baseUrl = `http://127.0.0.1:${port}`
        await waitReady(baseUrl, child)
        return baseUrl
      }),
    )
    await body(baseUrls)
  } finally {
    await Promise.all(
      children.map((child) => {
        if (child.exitCode !== null) return undefined
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGTERM')
        return exited
      }),
    )
  }
}

export async function waitReady(baseUrl: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`the server exited with code ${child.exitCode}`)
    const ok = await fetch(`${baseUrl}/health/ready`).then(
      (r) => r.ok,
      () => false,
    )
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error('the server did not become ready in 60 s')
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port')),
      )
    })
  })
}

/** The server's event-loop delay p99 since the previous scrape (prom-client resets it per collection), ms. */
async function eventLoopP99(baseUrl: string): Promise<number | undefined> {
  const text = await fetch(`${baseUrl}/metrics`).then((r) => (r.ok ? r.text() : ''))
  const line = text.split('\n').find((l) => l.startsWith('kelix_nodejs_eventloop_lag_p99_seconds '))
  return line === undefined ? undefined : Number(line.split(' ')[1]) * 1000
}
