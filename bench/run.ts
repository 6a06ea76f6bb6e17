/**
 * `npm run bench [-- --mode engine|serve|all] [--quick] [--rounds N]`: runs the benchmarks,
 * prints tables and writes JSON under bench/results/.
 *
 * `npm run bench -- --mode convert [--layers N] [--keep] [--dir DIR] [--cpu-prof]`: the converter
 * at Kelix-8B shapes (convert-bench.ts). Not part of `all`: it is long and needs ~70 GB of disk at 36 layers.
 *
 * `npm run bench -- --mode image [--quick] [--no-real] [--keep] [--dir DIR]`: denoise steps, VAE decodes
 * and images per minute on the tiny model, then one step and one decode of a random DiT and VAE at the
 * real sizes (image-bench.ts). Not part of `all`: it takes ~10 minutes and ~10 GB of disk (--no-real: seconds).
 *
 * `npm run bench -- --mode sampling [--quick]`: `Sampler.sample` per row at the real vocabulary, before
 * (the frozen pre-fast-path sampler) and after (sampling-bench.ts). Not part of `all`; about two minutes.
 *
 * `npm run bench -- --preset small|full [--quick] [--keep] [--dir DIR] [--layers N] [--no-llama-cpp]`: memory-bound presets
 * (preset-bench.ts). small: Qwen3-0.6B's LLM inside Kelix at fp32, int8 and int4 (step times, their floor,
 * serving, TTFT, memory; ~6 min on 2 cores, ~20 GB of disk). full: Kelix-8B shapes at int4, one step and its
 * floor (~6 min, ~34 GB of disk, ~11 GB of memory), refused up front when either is short. `--preset`
 * replaces `--mode`; `--keep` leaves the checkpoint and exports in --dir, and a later run reuses them.
 * The small preset runs llama.cpp beside ours on the same LLM (GGUF F32/Q8_0/Q4_0) when node-llama-cpp is
 * installed (`npm run bench:llama-cpp-setup`, once; ~85 MB in bench/llama-cpp); `--no-llama-cpp` skips it.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { UsageError } from '../src/cli/command.js'
import { parseFlags } from '../src/cli/flags.js'
import { benchConvert, printConvertBench } from './convert-bench.js'
import { benchGrammar } from './grammar-bench.js'
import { benchPreset, printPresetBench } from './preset-bench.js'
import { buildTinyModel, ensureTinyModel } from '../src/builder/build-model.js'
import { DEFAULT_MODEL_DIR } from '../src/builder/default-model-dir.js'
import { defaultIntraOpThreads } from '../src/batching/http-thread/engine-client.js'
import { loadModel } from '../src/engine/model.js'
import { patternPng } from '../test/helpers/images.js'
import { benchEngine } from './engine-bench.js'
import { benchImages, printImageBench } from './image-bench.js'
import { benchSampling, VOCAB } from './sampling-bench.js'
import { benchServe } from './serve-bench.js'
import { formatTable } from './table.js'

const OPTIONS = {
  mode: { type: 'string', default: 'all' },
  quick: { type: 'boolean', default: false },
  rounds: { type: 'string' },
  layers: { type: 'string' },
  preset: { type: 'string' },
  keep: { type: 'boolean', default: false },
  dir: { type: 'string' },
  'cpu-prof': { type: 'boolean', default: false },
  'no-real': { type: 'boolean', default: false },
  'no-llama-cpp': { type: 'boolean', default: false },
  'model-dir': { type: 'string' },
} as const

/** A bad command line is one line and exit 2, as the kelix-serve CLI reports it. */
function usage(message: string): never {
  console.error(`bench: ${message}`)
  process.exit(2)
}

const values = (() => {
  try {
    return parseFlags(process.argv.slice(2), OPTIONS)
  } catch (err) {
    if (err instanceof UsageError) usage(err.message)
    throw err
  }
})()
const mode = values.mode ?? 'all'
if (!['engine', 'serve', 'all', 'convert', 'image', 'sampling', 'grammar'].includes(mode))
  usage(`--mode must be engine, serve, all, convert, image, sampling or grammar, got ${mode}`)
const preset = values.preset
if (preset !== undefined && preset !== 'small' && preset !== 'full')
  usage(`--preset must be small or full, got ${preset}`)
const layers = values.layers === undefined ? undefined : Number(values.layers)

// The convert and sampling modes and the presets do not need the tiny model.
const needsModel = mode !== 'convert' && mode !== 'sampling' && preset === undefined
if (needsModel) await ensureTinyModel(DEFAULT_MODEL_DIR)
const model = needsModel ? await loadModel(DEFAULT_MODEL_DIR) : undefined
const machine = {
  model: model?.config.name ?? 'kelix-8b shapes (synthetic)',
  node: process.version,
  cores: cpus().length,
  date: new Date().toISOString(),
}
await mkdir(new URL('./results/', import.meta.url), { recursive: true })
const write = (name: string, result: object) =>
  writeFile(
    new URL(`./results/${name}.json`, import.meta.url),
    `${JSON.stringify({ ...machine, ...result }, null, 2)}\n`,
  )

if (preset !== undefined) {
  if (layers !== undefined && (!Number.isInteger(layers) || layers < 1))
    usage(`--layers must be a positive integer, got ${values.layers}`)
  // The server's thread count: the step timings and the served numbers then describe the same engine.
  const threads = Number(process.env.KELIX_INTRA_OP_THREADS ?? defaultIntraOpThreads())
  const outcome = await benchPreset({
    preset,
    quick: values.quick ?? false,
    keep: values.keep ?? false,
    dir: values.dir ?? tmpdir(),
    threads,
    llamaCpp: !(values['no-llama-cpp'] ?? false),
    ...(layers === undefined ? {} : { layers }),
  })
  if (!outcome.ran) {
    console.log(`--preset ${preset}: not run: ${outcome.reason}`)
    process.exitCode = 1
  } else {
    printPresetBench(outcome.result)
    await write(`preset-${preset}`, { mode: `preset ${preset}`, ...outcome.result })
    console.log(`\nwrote bench/results/preset-${preset}.json`)
  }
} else if (mode === 'convert') {
  const result = await benchConvert({
    layers: layers ?? 36,
    keep: values.keep ?? false,
    dir: values.dir ?? tmpdir(),
    cpuProfile: values['cpu-prof'] ?? false,
  })
  printConvertBench(result)
  await write('convert', { mode: 'convert', ...result })
  console.log('\nwrote bench/results/convert.json')
}

if (mode === 'sampling') {
  const rows = benchSampling({ quick: values.quick ?? false })
  const ms = (x: number) => x.toFixed(3)
  console.log(
    `Sampler.sample per row, ${VOCAB} ids (Node ${process.version}, ${cpus().length} cores); ms, before = the pre-fast-path sampler\n`,
  )
  console.log(
    formatTable(
      rows.map((r) => ({
        rows: r.rows,
        case: r.case,
        logprobs: r.logprobs ? 'top 5' : '',
        'before p50': ms(r.beforeP50Ms),
        'before p90': ms(r.beforeP90Ms),
        'after p50': ms(r.afterP50Ms),
        'after p90': ms(r.afterP90Ms),
        speedup: `${(r.beforeP50Ms / r.afterP50Ms).toFixed(1)}x`,
        'ids differ': r.mismatches,
        // How often top_p needed a closer total (nucleus.ts), of the timed calls (warm-up included).
        'top_p sums':
          r.nucleus === undefined
            ? ''
            : r.nucleus.plain > 0
              ? `plain ${r.nucleus.plain}`
              : `${r.nucleus.upperRangeSum}/${r.nucleus.rowSum}/${r.nucleus.exactSum}`,
      })),
    ),
  )
  await write('sampling', { mode: 'sampling', vocab: VOCAB, rows })
  console.log(
    '\ntop_p sums: calls (of warm-up and timed ones) that needed the upper-range / whole-row / exact total; plain: calls on the plain path',
  )
  console.log('wrote bench/results/sampling.json')
}

if (mode === 'grammar') {
  const threads = Number(process.env.KELIX_INTRA_OP_THREADS ?? defaultIntraOpThreads())
  const dir = values['model-dir'] ?? DEFAULT_MODEL_DIR
  const grammarModel = await loadModel(dir, { intraOpThreads: threads })
  const result = await benchGrammar(grammarModel, { rounds: values.quick ? 1 : 3 })
  console.log(
    `Constrained decoding, ${result.model}, batch ${result.batch}, ${result.tokensPerAnswer} tokens per answer, raw engine (${threads} thread(s))\n`,
  )
  console.log(
    formatTable(
      result.rounds.map((r) => ({
        side: r.side,
        steps: r.steps,
        tokens: r.tokens,
        'tokens/s': r.tokensPerSecond,
        'mask ms/step': r.maskMsPerStep,
        'sampling ms/step': r.samplingMsPerStep,
      })),
    ),
  )
  console.log(
    `\nconstrained ÷ free throughput (median of rounds): ${result.ratio.toFixed(3)}; masks ${result.maskMsPerStep.toFixed(2)} ms per step`,
  )
  await write(`grammar-${result.model}`, { mode: 'grammar', ...result })
  console.log(`wrote bench/results/grammar-${result.model}.json`)
}

if (mode === 'image') {
  const threads = Number(process.env.KELIX_INTRA_OP_THREADS ?? defaultIntraOpThreads())
  const result = await benchImages({
    modelDir: DEFAULT_MODEL_DIR,
    threads,
    quick: values.quick ?? false,
    real: !(values['no-real'] ?? false),
    keep: values.keep ?? false,
    dir: values.dir ?? tmpdir(),
  })
  printImageBench(result)
  await write('image', { mode: 'image', ...result })
  console.log('\nwrote bench/results/image.json')
}

if ((mode === 'engine' || mode === 'all') && model !== undefined) {
  const conventionalDir = join(tmpdir(), `kelix-tiny-present-${process.pid}`)
  await buildTinyModel(conventionalDir, { cacheOutputs: 'present' })
  const conventional = await loadModel(conventionalDir)
  const rows = await benchEngine(
    [
      { graph: 'delta (default)', model },
      { graph: 'present (conventional)', model: conventional },
    ],
    { batches: [1, 4, 16, 32], steps: values.quick ? 5 : 30, warmup: values.quick ? 1 : 3 },
  )
  await conventional.dispose()
  await rm(conventionalDir, { recursive: true, force: true })
  console.log(`Raw engine, ${model.config.name}, decode steps (Node ${process.version}, ${cpus().length} cores)\n`)
  console.log(
    formatTable(
      rows.map((r) => ({
        batch: r.batch,
        'decoder graph': r.graph,
        'step ms': r.stepMsMean,
        'tokens/s': r.tokensPerSecond,
        'llm ms': r.llmMs,
        'block dec ms': r.blockDecoderMs,
        'sampling ms': r.samplingMs,
        'other ms': r.otherMs,
      })),
    ),
  )
  await write('engine', { mode: 'engine', rows })
  console.log('\nwrote bench/results/engine.json\n')
}

if ((mode === 'serve' || mode === 'all') && model !== undefined) {
  // The raw-engine rows use the server's own session settings, so the comparison isolates HTTP and scheduling.
  const threads = Number(process.env.KELIX_INTRA_OP_THREADS ?? defaultIntraOpThreads())
  const serverLikeModel = await loadModel(DEFAULT_MODEL_DIR, { intraOpThreads: threads })
  const rounds = Number(values.rounds ?? (values.quick ? 2 : 7))
  if (!Number.isInteger(rounds) || rounds < 1) usage(`--rounds must be a positive integer, got ${values.rounds}`)
  const result = await benchServe(serverLikeModel, await patternPng(224, 224, 1), { quick: values.quick, rounds })
  await serverLikeModel.dispose()
  console.log(`(server and raw engine: ${threads} intra-op thread(s) per operator)`)
  console.log(`Serving, ${model.config.name}, streaming over HTTP, 32 tokens per answer\n`)
  console.log(
    formatTable(
      result.rows.map((r) => ({
        target: r.target,
        prompt: r.prompt,
        load: r.load,
        conc: r.concurrency,
        'out tok/s': r.outputTokensPerSecond,
        'ttft p50': r.ttftP50Ms ?? '',
        'ttft p99': r.ttftP99Ms ?? '',
        'itl p50': r.itlP50Ms ?? '',
        'itl p99': r.itlP99Ms ?? '',
        'e2e p50': r.e2eP50Ms ?? '',
        'decode tok/s': r.decodeRate ?? '',
      })),
    ),
  )
  console.log(
    `\nTargets: ${rounds} rounds, each measuring every side back to back (c32: 64 requests to the server and the raw engine, 32 to the max_num_seqs=1 server; c1: 8 single requests to each, alternating); median and range of the per-round ratio\n`,
  )
  console.log(
    formatTable(
      result.ratios.map((r) => ({
        target: r.target,
        'answer tokens': r.answerTokens,
        median: r.median,
        min: r.min,
        max: r.max,
      })),
    ),
  )
  console.log('')
  const others = {
    'event-loop delay p99 at c32, ms (< 20)': result.eventLoopDelayP99Ms ?? Number.NaN,
    'images per minute, one at a time': result.imagesPerMinute,
  }
  console.log(formatTable(Object.entries(others).map(([measure, value]) => ({ measure, value }))))
  await write('serve', { mode: 'serve', ...result, others })
  console.log('\nwrote bench/results/serve.json')
}
await model?.dispose()
