/**
 * Memory-bound presets (`npm run bench -- --preset small|full [--quick] [--keep] [--dir DIR]`).
 *
 * small: a synthetic Kelix with Qwen3-0.6B's LLM (preset-model.ts), written
 * once in bf16 and converted at fp32, int8 and int4. Per precision, in one run:
 *
 *   bytes of weights a decode step reads (step-reads.ts) ─┐
 *   memory bandwidth, copy loop in this process ──────────┴► floor ms = bytes ÷ bandwidth
 *   decode step ms at batch 1, 4, 16, 32 (bench/engine-bench.ts, the server's thread count)
 *   the real HTTP server on the export: resident memory after load, c1..c32
 *   closed-loop throughput (fixed 32-token answers), TTFT of a ~1,000-position
 *   prompt over the real tokenizer, resident memory after the run
 *   llama.cpp beside it (llama-cpp.ts): the same LLM and weights as a GGUF of
 *   the same bits (F32, Q8_0, Q4_0), the same closed loops and long prompt,
 *   each concurrency run right after ours so both see the machine alike
 *
 * full: Kelix-8B's shapes at int4, one decode step at batch 1 and its floor,
 * refused up front when the disk or the memory cannot hold it.
 *
 * GB are 10^9 bytes; MB 10^6.
 */
import { spawn } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import { mkdir, readFile, rm, stat, statfs } from 'node:fs/promises'
import { cpus, freemem, totalmem } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { KelixCheckpointSizes } from '../src/builder/kelix-checkpoint-layout.js'
import type { Precision } from '../src/builder/precision.js'
import { Engine } from '../src/engine/engine.js'
import { loadModel, type KelixModel } from '../src/engine/model.js'
import { BandwidthMeter, type Bandwidth } from './bandwidth.js'
import { measureComputeCeiling, type ComputeCeiling } from './compute-ceiling.js'
import { benchEngine, type EngineBenchRow } from './engine-bench.js'
import { closedLoop, summarise, type LoadOptions } from './load.js'
import { writeQwen3Gguf } from './gguf/qwen3-gguf.js'
import {
  LLAMA_CPP_VERSION,
  loadNodeLlamaCpp,
  openLlamaCpp,
  type LlamaCppLoad,
  type LlamaCppRunner,
  type NodeLlamaCpp,
} from './llama-cpp.js'
import {
  checkpointBytes,
  dirBytes,
  ensureCheckpoint,
  isCheckpointComplete,
  ensureExport,
  exportBytesEstimate,
  GB,
  ggufBytesEstimate,
  presetPrecisions,
  presetSizes,
  type PresetName,
  type PresetPrecision,
} from './preset-model.js'
import { residentMemory, type Resident } from './resident.js'
import { buildServer, freePort, waitReady } from './serve-bench.js'
import { median } from './stats.js'
import { decodeStepReads, type StepReads } from './step-reads.js'
import { formatTable } from './table.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

export interface PresetOptions {
  preset: PresetName
  quick: boolean
  keep: boolean
  /** Where the checkpoint and the exports go. */
  dir: string
  /** LLM layers (default: the preset's; fewer for a quick look at the harness). */
  layers?: number
  /** ONNX Runtime intra-op threads, the server's (its default: cores − 1); llama.cpp's too. */
  threads: number
  /** llama.cpp beside ours (small preset), when node-llama-cpp is installed. */
  llamaCpp: boolean
}

export interface ServingRow {
  concurrency: number
  requests: number
  failed: number
  outputTokensPerSecond: number
  tokensPerRequest: number
  ttftP50Ms: number
  itlP50Ms: number
  e2eP50Ms: number
}

export interface PrecisionResult {
  name: string
  precision: Precision
  /** null when a kept export was reused. */
  convertSeconds: number | null
  exportGB: number
  exportEstimateGB: number
  reads: StepReads
  /** Measured right before the step timings: at the engine's thread count, and on every core. */
  bandwidth: Bandwidth[]
  /** Batch 1 floor: reads ÷ read rate at the engine's thread count, of the copy loop and of the read-only scan. */
  floor: { threads: number; copyMs: number; scanMs: number }
  engine: EngineBenchRow[]
  /** What batching can reach at most here (small preset). */
  ceiling?: ComputeCeiling
  /** Absent in the full preset (one step only). */
  serving?: ServingRow[]
  ttft?: { promptPositions: number[]; ms: number[]; p50Ms: number }
  memory?: { afterLoad: Resident; afterRun: Resident }
  /** llama.cpp on the same LLM (small preset, when run). */
  llamaCpp?: LlamaCppResult
}

export interface LlamaCppResult {
  gguf: string
  ggufGB: number
  /** null when a kept file was reused. */
  writeSeconds: number | null
  serving: LlamaCppLoad[]
  ttft: { promptPositions: number[]; ms: number[]; p50Ms: number }
}

export interface PresetResult {
  preset: PresetName
  model: string
  sizes: {
    layers: number
    hidden: number
    heads: number
    kvHeads: number
    headDim: number
    intermediate: number
    vocab: number
    blockDecoder: { dModel: number; layers: number }
  }
  threads: number
  quick: boolean
  checkpointGB: number
  /** null when a kept checkpoint was reused. */
  writeSeconds: number | null
  /** Of the serving loads (small preset only). */
  answerTokens: number | null
  precisions: PrecisionResult[]
  /** node-llama-cpp's version and threads, or why llama.cpp did not run. */
  llamaCpp: { version: string; threads: number } | { skipped: string }
  kept: string | null
}

/** The preset's run, or why it cannot run here (the full preset on a small machine). */
export type PresetOutcome = { ran: true; result: PresetResult } | { ran: false; reason: string }

/** Answer length of the serving loads (fixed: <|im_end|> is banned). */
const ANSWER_TOKENS = 32
/** Positions of the TTFT prompt (chat template included). */
const TTFT_POSITIONS = 1000
const CONCURRENCIES = [1, 4, 8, 16, 32]
/** The short requests' messages: each starts with its own number. */
const shortMessages = (i: number) => [
  { role: 'user' as const, content: `Request ${i}: tell me about the numbers operators watch in Grafana.` },
]

export async function benchPreset(opts: PresetOptions): Promise<PresetOutcome> {
  const sizes = presetSizes(opts.preset, opts.layers)
  const precisions = presetPrecisions(opts.preset)
  const base = resolve(opts.dir)
  await mkdir(base, { recursive: true })
  // The directory name carries the sizes, so a kept run is reused only for the same model.
  const root = join(base, `kelix-preset-${opts.preset}-L${sizes.layers}`)
  const refusal = await whyNot(opts, root)
  if (refusal !== undefined) return { ran: false, reason: refusal }
  const onSignal = (signal: NodeJS.Signals) => {
    if (!opts.keep) rmSync(root, { recursive: true, force: true })
    process.kill(process.pid, signal)
  }
  if (!opts.keep) process.once('SIGINT', onSignal).once('SIGTERM', onSignal)
  try {
    const checkpoint = join(root, 'checkpoint')
    console.log(`Checkpoint: ${(checkpointBytes(sizes) / GB).toFixed(1)} GB bf16 in ${checkpoint}`)
    const written = await ensureCheckpoint(checkpoint, sizes)
    console.log(written.reused ? '  reused (a kept run)' : `  written in ${written.seconds.toFixed(0)} s`)
    const llama =
      opts.preset === 'small' && opts.llamaCpp
        ? await loadNodeLlamaCpp()
        : { missing: opts.preset === 'full' ? 'the full preset measures one step only' : '--no-llama-cpp' }
    if ('missing' in llama) console.log(`llama.cpp: not run: ${llama.missing}`)
    const exports: Export[] = []
    for (const p of precisions) {
      const dir = exportDir(root, opts.preset, p)
      console.log(
        `Converting at ${p.name} (linear ${p.precision.linear}, LM head ${p.precision.lmHead}, embedding ${p.precision.embedding})`,
      )
      const converted = await ensureExport(checkpoint, dir, p.precision)
      console.log(converted.reused ? '  reused (a kept run)' : `  converted in ${converted.seconds.toFixed(0)} s`)
      exports.push({
        ...p,
        dir,
        seconds: converted.reused ? null : converted.seconds,
        ...('module' in llama ? { ggufFile: await ensureGguf(root, checkpoint, sizes, p) } : {}),
      })
    }
    // The full preset's checkpoint outweighs its export: free the disk before the measurements.
    if (opts.preset === 'full' && !opts.keep) await rm(checkpoint, { recursive: true, force: true })

    if (opts.preset === 'small') buildServer()
    const meter = new BandwidthMeter()
    const results: PrecisionResult[] = []
    for (const e of exports) {
      console.log(`\nMeasuring ${e.name}`)
      results.push(await measurePrecision(e, meter, opts, 'module' in llama ? llama.module : undefined))
    }
    return {
      ran: true,
      result: {
        preset: opts.preset,
        model: opts.preset === 'small' ? 'Kelix with Qwen3-0.6B shapes (synthetic)' : 'Kelix-8B shapes (synthetic)',
        sizes: {
          layers: sizes.layers,
          hidden: sizes.hidden,
          heads: sizes.heads,
          kvHeads: sizes.kvHeads,
          headDim: sizes.headDim,
          intermediate: sizes.intermediate,
          vocab: sizes.textVocab + sizes.codebooks * sizes.codesPerBook,
          blockDecoder: { dModel: sizes.blockDecoder.dModel, layers: sizes.blockDecoder.layers },
        },
        threads: opts.threads,
        quick: opts.quick,
        checkpointGB: checkpointBytes(sizes) / GB,
        writeSeconds: written.reused ? null : written.seconds,
        answerTokens: opts.preset === 'small' ? ANSWER_TOKENS : null,
        precisions: results,
        llamaCpp:
          'module' in llama ? { version: LLAMA_CPP_VERSION, threads: opts.threads } : { skipped: llama.missing },
        kept: opts.keep ? root : null,
      },
    }
  } finally {
    if (!opts.keep) {
      await rm(root, { recursive: true, force: true })
      process.off('SIGINT', onSignal).off('SIGTERM', onSignal)
    }
  }
}

const exportDir = (root: string, preset: PresetName, p: PresetPrecision) => join(root, `kelix-${preset}-${p.name}`)
const ggufPath = (root: string, p: PresetPrecision) => join(root, `llm-${p.gguf}.gguf`)

interface Export extends PresetPrecision {
  dir: string
  seconds: number | null
  /** The LLM as a GGUF for llama.cpp, when it runs. */
  ggufFile?: { path: string; seconds: number | null }
}

/** The LLM's GGUF at the precision's type, written unless a kept run left it (written whole or not at all). */
async function ensureGguf(
  root: string,
  checkpoint: string,
  sizes: KelixCheckpointSizes,
  p: PresetPrecision,
): Promise<{ path: string; seconds: number | null }> {
  const path = ggufPath(root, p)
  if (existsSync(path)) return { path, seconds: null }
  console.log(`Writing the LLM as ${p.gguf} GGUF for llama.cpp`)
  const started = performance.now()
  await writeQwen3Gguf({ checkpoint, sizes, type: p.gguf, path })
  const seconds = (performance.now() - started) / 1000
  console.log(`  written in ${seconds.toFixed(0)} s`)
  return { path, seconds }
}

/**
 * Disk: the checkpoint and every export at once (+5%), less what a kept run
 * left complete. Memory (full preset): the export resident at once plus 2 GB
 * of runtime (the small preset measures PSS after load ≈ export size), against
 * what the kernel calls available (os.freemem is MemAvailable on Linux).
 */
async function whyNot(opts: PresetOptions, root: string): Promise<string | undefined> {
  const sizes = presetSizes(opts.preset, opts.layers)
  const precisions = presetPrecisions(opts.preset)
  const exports = precisions.map((p) => exportBytesEstimate(sizes, p.precision))
  const ggufs =
    opts.preset === 'small' && opts.llamaCpp
      ? precisions.map((p) => (existsSync(ggufPath(root, p)) ? 0 : ggufBytesEstimate(sizes, p.gguf)))
      : []
  const gb = (n: number) => `${(n / GB).toFixed(1)} GB`
  const left =
    (isCheckpointComplete(join(root, 'checkpoint')) ? 0 : checkpointBytes(sizes)) +
    precisions.reduce(
      (n, p, i) => n + (existsSync(join(exportDir(root, opts.preset, p), 'config.json')) ? 0 : (exports[i] as number)),
      0,
    ) +
    ggufs.reduce((a, b) => a + b, 0)
  const free = await freeDisk(dirname(root))
  if (free < 1.05 * left) {
    return (
      `not enough disk in ${dirname(root)}: the ${opts.preset} preset needs ${gb(1.05 * left)} (checkpoint ${gb(checkpointBytes(sizes))} bf16 + exports ${exports.map(gb).join(' + ')}` +
      `${ggufs.length === 0 ? '' : ` + GGUFs ${ggufs.map(gb).join(' + ')}`}, ` +
      `+ 5%, less what a kept run left), ${gb(free)} free. Use --dir DIR on a larger disk.`
    )
  }
  const memory = Math.max(...exports) + 2 * GB
  if (opts.preset === 'full' && freemem() < memory) {
    return `not enough memory: the int4 export at Kelix-8B shapes needs about ${gb(memory)} resident (export ${gb(Math.max(...exports))} + 2 GB of runtime), ${gb(freemem())} of ${gb(totalmem())} available.`
  }
  return undefined
}

async function freeDisk(dir: string): Promise<number> {
  const fs = await statfs(dir)
  return fs.bavail * fs.bsize
}

async function measurePrecision(
  e: Export,
  meter: BandwidthMeter,
  opts: PresetOptions,
  llama: NodeLlamaCpp | undefined,
): Promise<PrecisionResult> {
  const reads = await decodeStepReads(e.dir)
  const model = await loadModel(e.dir, { intraOpThreads: opts.threads })
  let engine: EngineBenchRow[]
  let bandwidth: Bandwidth[]
  let prompts: Prompts | undefined
  let ceiling: ComputeCeiling | undefined
  try {
    // Right before the step timings, so both see the machine in the same state.
    bandwidth = [
      await meter.measure(opts.threads),
      ...(opts.threads === cpus().length ? [] : [await meter.measure(cpus().length)]),
    ]
    const batches = opts.preset === 'full' ? [1] : opts.quick ? [1, 4] : CONCURRENCIES
    engine = await benchEngine([{ graph: e.name, model }], {
      batches,
      steps: opts.quick || opts.preset === 'full' ? 3 : 8,
      warmup: opts.quick ? 1 : 2,
    })
    if (opts.preset === 'small') {
      ceiling = await measureComputeCeiling(presetSizes(opts.preset, opts.layers), e.precision.linear, opts.threads)
      prompts = await promptsFor(model, opts.quick ? 1 : 2)
    }
  } finally {
    await model.dispose()
  }
  const atThreads = bandwidth[0] as Bandwidth
  const floorMs = (GBps: number) => (reads.totalBytes / (GBps * GB)) * 1000
  const result: PrecisionResult = {
    name: e.name,
    precision: e.precision,
    convertSeconds: e.seconds,
    exportGB: (await dirBytes(e.dir)) / GB,
    exportEstimateGB: exportBytesEstimate(presetSizes(opts.preset, opts.layers), e.precision) / GB,
    reads,
    bandwidth,
    floor: {
      threads: atThreads.threads,
      copyMs: floorMs(atThreads.copyReadGBps),
      scanMs: floorMs(atThreads.scanReadGBps),
    },
    engine,
    ...(ceiling === undefined ? {} : { ceiling }),
  }
  if (prompts === undefined) return result
  const beside =
    llama !== undefined && e.ggufFile !== undefined
      ? { runner: await openLlamaCpp(llama, e.ggufFile.path, opts.threads), gguf: e.ggufFile }
      : undefined
  try {
    return { ...result, ...(await measureServer(e.dir, prompts, opts, beside)) }
  } finally {
    await beside?.runner.dispose()
  }
}

/** The long prompts (texts, positions, token ids) and the short request's token ids, from our template and tokenizer. */
interface Prompts {
  texts: string[]
  positions: number[]
  ids: number[][]
  shortIds: number[]
}

/** Words for the long prompt: plain English, so the real tokenizer splits it as it would a user's text. */
const WORDS = (
  'a decode step reads every weight of the model once so on a processor the time of one step at small batches is set by ' +
  'how fast memory delivers those bytes while larger batches reuse each weight for many rows and become bound by arithmetic ' +
  'operators watch tokens per second time to first token queue time and resident memory when they size a deployment'
).split(' ')

/**
 * `count` prompts of about TTFT_POSITIONS positions each (template included),
 * each starting with its own number so that no prefix-cache chunk is shared.
 */
async function promptsFor(model: KelixModel, count: number): Promise<Prompts> {
  const engine = new Engine(model)
  // A text prompt is one token per block, in slot 0.
  const ids = async (content: string) => {
    const { blocks } = await engine.preparePrompt([{ role: 'user', content }], { addGenerationPrompt: true })
    return Array.from({ length: blocks.length }, (_, i) => blocks.firstId(i))
  }
  const text = (i: number, words: number) =>
    `Note ${String(i).padStart(2, '0')}: ${Array.from({ length: words }, (_, w) => WORDS[(w * 7 + Math.floor(w / WORDS.length)) % WORDS.length]).join(' ')}.`
  const positions = async (content: string) =>
    (await engine.preparePrompt([{ role: 'user', content }], { addGenerationPrompt: true })).blocks.length
  // The most words that stay within TTFT_POSITIONS (positions grow with the word count).
  let lo = 1
  let hi = 2 * TTFT_POSITIONS
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2)
    if ((await positions(text(0, mid))) <= TTFT_POSITIONS) lo = mid
    else hi = mid - 1
  }
  const texts = Array.from({ length: count }, (_, i) => text(i, lo))
  const long = await Promise.all(texts.map(ids))
  return {
    texts,
    positions: long.map((p) => p.length),
    ids: long,
    shortIds: await ids((shortMessages(0)[0] as { content: string }).content),
  }
}

/** The server on the export: memory after load, the closed loops, TTFT, memory after the run. */
async function measureServer(
  dir: string,
  prompts: Prompts,
  opts: PresetOptions,
  beside: { runner: LlamaCppRunner; gguf: { path: string; seconds: number | null } } | undefined,
): Promise<Pick<PrecisionResult, 'serving' | 'ttft' | 'memory' | 'llamaCpp'>> {
  const server = await startServer(dir, opts.threads)
  try {
    const afterLoad = await residentMemory(server.pid)
    const base = { baseUrl: server.baseUrl, model: server.model, extra: { logit_bias: { [server.imEnd]: -100 } } }
    const short: LoadOptions = { ...base, request: (i) => ({ messages: shortMessages(i), maxTokens: ANSWER_TOKENS }) }
    await closedLoop({ ...short, request: (i) => ({ ...short.request(i), maxTokens: 4 }) }, 1, 1) // warm-up: first runs of every kernel
    const serving: ServingRow[] = []
    const theirs: LlamaCppLoad[] = []
    for (const c of opts.quick ? [1, 4] : CONCURRENCIES) {
      const run = await closedLoop(short, c, Math.max(4, c))
      const s = summarise(run)
      const tokensPerRequest = run.samples.reduce((n, x) => n + x.tokens, 0) / run.samples.length
      serving.push({
        concurrency: c,
        requests: s.requests,
        failed: s.failed,
        outputTokensPerSecond: s.outputTokensPerSecond,
        tokensPerRequest,
        ttftP50Ms: s.ttftP50Ms,
        itlP50Ms: s.itlP50Ms,
        e2eP50Ms: s.e2eP50Ms,
      })
      const llama = await beside?.runner.closedLoop(prompts.shortIds, ANSWER_TOKENS, c)
      if (llama !== undefined) theirs.push(llama)
      console.log(
        `  c${c}: ${s.outputTokensPerSecond.toFixed(1)} tokens/s${llama === undefined ? '' : `, llama.cpp ${llama.outputTokensPerSecond.toFixed(1)}`}`,
      )
    }
    // A few tokens, not one: a first token that decodes to no text yet would leave no content chunk to time.
    const long: LoadOptions = {
      ...base,
      request: (i) => ({ messages: [{ role: 'user', content: prompts.texts[i] as string }], maxTokens: 4 }),
    }
    const ttft = (await closedLoop(long, 1, prompts.texts.length)).samples.map((s) => s.ttftMs ?? Number.NaN)
    console.log(`  TTFT at ${prompts.positions.join('/')} positions: ${ttft.map((t) => t.toFixed(0)).join(', ')} ms`)
    const afterRun = await residentMemory(server.pid)
    const result = {
      serving,
      ttft: { promptPositions: prompts.positions, ms: ttft, p50Ms: median(ttft) },
      memory: { afterLoad, afterRun },
    }
    if (beside === undefined) return result
    const theirTtft = await beside.runner.ttft(prompts.ids)
    console.log(`  llama.cpp TTFT: ${theirTtft.map((t) => t.toFixed(0)).join(', ')} ms`)
    const llamaCpp: LlamaCppResult = {
      gguf: basename(beside.gguf.path),
      ggufGB: (await stat(beside.gguf.path)).size / GB,
      writeSeconds: beside.gguf.seconds,
      serving: theirs,
      ttft: { promptPositions: prompts.positions, ms: theirTtft, p50Ms: median(theirTtft) },
    }
    return { ...result, llamaCpp }
  } finally {
    await server.stop()
  }
}

/** `node dist/server/main.js` on `dir`, as users run it; its pid for /proc. */
async function startServer(
  dir: string,
  threads: number,
): Promise<{ baseUrl: string; pid: number; model: string; imEnd: number; stop: () => Promise<void> }> {
  const port = await freePort()
  const env = {
    ...process.env,
    KELIX_MODEL_DIR: dir,
    KELIX_PORT: String(port),
    KELIX_HOST: '127.0.0.1',
    KELIX_LOG_LEVEL: 'warn',
    KELIX_INTRA_OP_THREADS: String(threads),
  }
  const child = spawn(process.execPath, ['dist/server/main.js'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  const stop = async () => {
    if (child.exitCode !== null) return
    const exited = new Promise((done) => child.once('exit', done))
    child.kill('SIGTERM')
    await exited
  }
  try {
    const baseUrl = `http://127.0.0.1:${port}`
    await waitReady(baseUrl, child)
    const models = (await (await fetch(`${baseUrl}/v1/models`)).json()) as { data: Array<{ id: string }> }
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as {
      special_tokens: { im_end: number }
    }
    return {
      baseUrl,
      pid: child.pid as number,
      model: models.data[0]?.id as string,
      imEnd: config.special_tokens.im_end,
      stop,
    }
  } catch (err) {
    await stop()
    throw err
  }
}

/** Prints the run as tables; the caller writes the JSON. */
export function printPresetBench(r: PresetResult): void {
  const mb = (n: number) => n / 1e6
  const b1 = (p: PrecisionResult) => p.engine.find((row) => row.batch === 1) as EngineBenchRow
  console.log(
    `\n${r.model}: ${r.sizes.layers} layers, hidden ${r.sizes.hidden}, ${r.sizes.heads}/${r.sizes.kvHeads} heads of ${r.sizes.headDim}, FFN ${r.sizes.intermediate}, vocabulary ${r.sizes.vocab}`,
  )
  console.log(`${cpus().length} cores, ONNX Runtime ${r.threads} intra-op thread(s) (the server's); MB = 10^6 bytes\n`)
  console.log(
    'Memory bandwidth, bytes read per second (copy: TypedArray.set, which also writes as many; scan: Buffer.indexOf, reads only)\n',
  )
  console.log(
    formatTable(
      r.precisions.flatMap((p) =>
        p.bandwidth.map((b) => ({
          'measured before': p.name,
          threads: b.threads,
          'copy read GB/s': b.copyReadGBps,
          'scan read GB/s': b.scanReadGBps,
        })),
      ),
    ),
  )
  console.log(
    "\nBatch-1 decode step against the floor (weights read per step ÷ read rate at the engine's thread count)\n",
  )
  console.log(
    formatTable(
      r.precisions.map((p) => ({
        precision: p.name,
        'decoder MB': mb(p.reads.decoderBytes),
        'head text MB': mb(p.reads.lmHeadTextBytes),
        'block dec MB': mb(p.reads.blockDecoderBytes + p.reads.embeddingRowBytes),
        'read/step MB': mb(p.reads.totalBytes),
        'floor ms (scan)': p.floor.scanMs,
        'floor ms (copy)': p.floor.copyMs,
        'step ms': b1(p).stepMsMean,
        'step/floor (scan)': b1(p).stepMsMean / p.floor.scanMs,
        'step/floor (copy)': b1(p).stepMsMean / p.floor.copyMs,
      })),
    ),
  )
  console.log('\nDecode steps (raw engine, no HTTP): mean ms per step and its split\n')
  console.log(
    formatTable(
      r.precisions.flatMap((p) =>
        p.engine.map((row) => ({
          precision: p.name,
          batch: row.batch,
          'step ms': row.stepMsMean,
          'llm ms': row.llmMs,
          'block dec ms': row.blockDecoderMs,
          'sampling ms': row.samplingMs,
          'other ms': row.otherMs,
          'tokens/s': row.tokensPerSecond,
        })),
      ),
    ),
  )
  const ceilings = r.precisions.filter((p) => p.ceiling !== undefined)
  if (ceilings.length > 0) {
    console.log(
      "\nCompute ceiling: the kernel's FLOP rate at 32 rows ÷ 2 FLOPs per weight a token multiplies (LLM, head text rows, block decoder)\n",
    )
    console.log(
      formatTable(
        ceilings.map((p) => {
          const c = p.ceiling as ComputeCeiling
          const widest = p.engine.reduce((a, b) => (b.batch > a.batch ? b : a))
          return {
            precision: p.name,
            kernel: c.kernel,
            'GFLOP/s': c.gflops,
            'weights/token (M)': c.weightsPerToken / 1e6,
            'ceiling tok/s': c.tokensPerSecond,
            [`batch ${widest.batch} tok/s`]: widest.tokensPerSecond,
            'of ceiling': widest.tokensPerSecond / c.tokensPerSecond,
          }
        }),
      ),
    )
  }
  const served = r.precisions.filter((p) => p.serving !== undefined)
  if (served.length === 0) return
  console.log(`\nServing over HTTP (closed loop, ${r.answerTokens}-token answers, streaming)\n`)
  console.log(
    formatTable(
      served.flatMap((p) =>
        (p.serving as ServingRow[]).map((s) => ({
          precision: p.name,
          conc: s.concurrency,
          requests: s.requests,
          'out tok/s': s.outputTokensPerSecond,
          'ttft p50 ms': s.ttftP50Ms,
          'itl p50 ms': s.itlP50Ms,
          'e2e p50 ms': s.e2eP50Ms,
          'served ÷ raw':
            s.outputTokensPerSecond /
            (p.engine.find((row) => row.batch === s.concurrency)?.tokensPerSecond ?? Number.NaN),
        })),
      ),
    ),
  )
  printLlamaCpp(r, served)
  console.log('\nLong prompt and resident memory of the server process (GB; PSS counts a shared mapping once)\n')
  console.log(
    formatTable(
      served.map((p) => {
        const m = p.memory as NonNullable<PrecisionResult['memory']>
        const t = p.ttft as NonNullable<PrecisionResult['ttft']>
        return {
          precision: p.name,
          'export GB': p.exportGB,
          'convert s': p.convertSeconds ?? 'kept',
          'prompt positions': [...new Set(t.promptPositions)].join('/'),
          'TTFT ms': t.p50Ms,
          'RSS load': m.afterLoad.rssGB,
          'PSS load': m.afterLoad.pssGB,
          'RSS run': m.afterRun.rssGB,
          'PSS run': m.afterRun.pssGB,
          'PSS anon/file run': `${m.afterRun.pssAnonGB.toFixed(2)}/${m.afterRun.pssFileGB.toFixed(2)}`,
        }
      }),
    ),
  )
}

/** Ours and llama.cpp's, concurrency by concurrency; the raw engine's LLM part is the like-for-like step (llama.cpp has no block decoder). */
function printLlamaCpp(r: PresetResult, served: readonly PrecisionResult[]): void {
  if ('skipped' in r.llamaCpp) {
    console.log(`\nllama.cpp: not run (${r.llamaCpp.skipped})`)
    return
  }
  console.log(
    `\nllama.cpp side by side (node-llama-cpp ${r.llamaCpp.version}, prebuilt CPU binaries, ${r.llamaCpp.threads} thread(s); the same LLM weights as GGUF, the head's text rows, no block decoder)\n`,
  )
  console.log(
    formatTable(
      served.flatMap((p) =>
        (p.serving as ServingRow[]).map((s) => {
          const theirs = p.llamaCpp?.serving.find((l) => l.concurrency === s.concurrency)
          const raw = p.engine.find((row) => row.batch === s.concurrency)
          return {
            precision: `${p.name}/${p.llamaCpp?.gguf ?? '-'}`,
            conc: s.concurrency,
            'ours tok/s': s.outputTokensPerSecond,
            'llama.cpp tok/s': theirs?.outputTokensPerSecond ?? Number.NaN,
            'ours ÷ llama.cpp': s.outputTokensPerSecond / (theirs?.outputTokensPerSecond ?? Number.NaN),
            'ours itl ms': s.itlP50Ms,
            'llama.cpp itl ms': theirs?.itlP50Ms ?? Number.NaN,
            'ours raw step ms': raw?.stepMsMean ?? Number.NaN,
            'ours raw LLM ms': raw?.llmMs ?? Number.NaN,
          }
        }),
      ),
    ),
  )
  console.log('\nTTFT of the long prompt (same token ids), p50 ms\n')
  console.log(
    formatTable(
      served.map((p) => ({
        precision: p.name,
        positions: [...new Set(p.ttft?.promptPositions)].join('/'),
        ours: p.ttft?.p50Ms ?? Number.NaN,
        'llama.cpp': p.llamaCpp?.ttft.p50Ms ?? Number.NaN,
      })),
    ),
  )
}
