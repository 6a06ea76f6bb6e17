/**
 * Converter scale check (`npm run bench -- --mode convert [--layers N] [--keep] [--dir DIR] [--cpu-prof]`):
 * writes a synthetic checkpoint with the real Kelix-8B shapes (bf16, 4 GiB
 * shards, random values, the real Qwen3 tokenizer with Kelix's added tokens),
 * then converts it in a child process while sampling that process's resident
 * memory, and reports rates and the peak against the bound of 2 GB + the
 * largest tensor in fp32. Not part of `--mode all`: at 36 layers it writes
 * about 25 GB of checkpoint and 40 GB of model, and takes minutes.
 *
 * GB here are 10^9 bytes.
 */
import { spawn } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import { mkdir, readFile, rm, statfs } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  keyeArConfig,
  kelixTensorSpecs,
  type KelixCheckpointSizes,
  type TensorSpec,
} from '../src/builder/kelix-checkpoint-layout.js'
import { writeCheckpointStreaming } from '../src/convert/checkpoint.js'
import { kelixTokenizerFiles } from '../test/helpers/qwen3-tokenizer.js'
import type { ChildResult } from './convert-child.js'
import { formatTable } from './table.js'

const GB = 1e9
/** The upload script's shard size. */
const SHARD_BYTES = 4 * 1024 ** 3
const SAMPLE_MS = 200
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** Kelix-8B's real sizes (/work/shared/kelix-checkpoint.md), with `layers` LLM layers (36 in the release). */
export function kelix8bSizes(layers = 36): KelixCheckpointSizes {
  return {
    textVocab: 151936,
    codebooks: 8,
    codesPerBook: 8192,
    hidden: 4096,
    layers,
    heads: 32,
    kvHeads: 8,
    headDim: 128,
    intermediate: 12288,
    maxSeqLen: 40960,
    ropeBase: 1e6,
    normEps: 1e-6,
    vision: {
      width: 1152,
      layers: 27,
      heads: 16,
      mlp: 4304,
      patchSize: 14,
      positionTable: 27,
      layerNormEps: 1e-6,
      ropeTheta: 10000,
    },
    quantizer: { codeDim: 128, tableWidth: 4096, upProjection: 1152 },
    blockDecoder: { dModel: 512, heads: 4, layers: 1, feedForward: 2048, positionRows: 65537 },
    ids: { eos: 151645, imagePad: 151655, visionStart: 151652, visionEnd: 151653, eob: 151681 },
    lmHeadGain: 1,
  }
}

/** Fills `out` with uniform values of standard deviation `std` around `center` (xorshift32: fast; the values do not matter). */
function fillRandom(out: Float32Array, seed: number, std: number, center: number): void {
  let x = seed | 0 || 1
  const scale = (std * Math.sqrt(3)) / 2 ** 31
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x * scale + center
  }
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193)
  return h >>> 0
}

const elements = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1)

/**
 * The served graphs' fp32 bytes, estimated from the specs: every tensor except
 * those the converter leaves out (the top-level `lm_head`, the frozen quantizer
 * tables, the packing position table, the up projectors, the block decoder's
 * final norm), the slot table cut to its used rows, the embedding table twice
 * (decoder and block decoder), plus the precomputed codebooks.
 */
export function servedBytesEstimate(s: KelixCheckpointSizes, specs: readonly TensorSpec[]): number {
  let values = 0
  for (const { key, shape } of specs) {
    if (
      key === 'lm_head.weight' ||
      /quantizer\.\d+\.embedding\.weight$/.test(key) ||
      key.includes('packing_position_embedding') ||
      key.includes('up_projectors.') ||
      key.includes('token_head.final_norm')
    )
      continue
    if (key.endsWith('token_head.position_embedding.weight')) values += (s.codebooks + 1) * s.blockDecoder.dModel
    else if (key.endsWith('tok_embeddings.embed_tokens.weight')) values += 2 * elements(shape)
    else values += elements(shape)
  }
  return 4 * (values + s.codebooks * s.codesPerBook * s.quantizer.codeDim)
}

export interface ConvertBenchOptions {
  layers: number
  keep: boolean
  /** Where the two directories go (default: the OS temporary directory). */
  dir: string
  /** Also run the child with `--cpu-prof` (profile left in the bench directory, which is then kept). */
  cpuProfile: boolean
}

export interface ConvertBenchResult {
  layers: number
  parameters: number
  tensors: number
  shards: number
  checkpointGB: number
  outputGB: number
  outputEstimateGB: number
  graphs: Array<{
    file: string
    dataGB: number
    graphMB: number
    parameters: number
    seconds: number
    GBPerSecond: number
    peakRssGB: number
  }>
  writeSeconds: number
  fillSeconds: number
  prepareSeconds: number
  convertSeconds: number
  checkpointGBPerSecond: number
  secondsPerCheckpointGB: number
  secondsPerOutputGB: number
  /** The converter's own peak resident memory: VmHWM of the child at its end. */
  peakRssGB: number
  /** The child's process.resourceUsage().maxRSS: at most parentRssAtSpawnGB more than its own peak (Linux keeps it across exec). */
  maxRssGB: number
  parentRssAtSpawnGB: number
  sampledPeakRssGB: number
  vmHwmGB: number
  largestTensor: { key: string; shape: number[]; fp32GB: number }
  rssBoundGB: number
  withinBound: boolean
  disk: { dir: string; freeGB: number; neededGB: number }
  kept: string | null
}

export async function benchConvert(opts: ConvertBenchOptions): Promise<ConvertBenchResult> {
  if (!Number.isInteger(opts.layers) || opts.layers < 1)
    throw new Error(`--layers must be a positive integer, got ${opts.layers}`)
  const sizes = kelix8bSizes(opts.layers)
  const specs = kelixTensorSpecs(sizes)
  const parameters = specs.reduce((n, s) => n + elements(s.shape), 0)
  const checkpointBytes = 2 * parameters
  const outputEstimate = servedBytesEstimate(sizes, specs)
  const largest = specs.reduce((a, b) => (elements(b.shape) > elements(a.shape) ? b : a))
  const largestBytes = 4 * elements(largest.shape)

  const base = resolve(opts.dir)
  await mkdir(base, { recursive: true })
  const fs = await statfs(base)
  const free = fs.bavail * fs.bsize
  const needed = Math.ceil((checkpointBytes + outputEstimate) * 1.1)
  if (free < needed) {
    throw new Error(
      `not enough disk space in ${base}: ${opts.layers} layers need about ${(needed / GB).toFixed(1)} GB ` +
        `(${(checkpointBytes / GB).toFixed(1)} GB checkpoint + ${(outputEstimate / GB).toFixed(1)} GB model + 10%), ${(free / GB).toFixed(1)} GB are free. ` +
        'Use --layers N for fewer layers or --dir DIR on a larger disk.',
    )
  }

  const root = join(base, `kelix-convert-bench-${process.pid}`)
  const checkpointDir = join(root, 'checkpoint')
  const modelDir = join(root, 'model')
  const keep = opts.keep || opts.cpuProfile
  // An interrupted run must not leave tens of gigabytes behind.
  const onSignal = (signal: NodeJS.Signals) => {
    if (!keep) rmSync(root, { recursive: true, force: true })
    process.kill(process.pid, signal)
  }
  if (!keep) process.once('SIGINT', onSignal).once('SIGTERM', onSignal)
  try {
    const converter = spawnConverter(
      checkpointDir,
      modelDir,
      join(root, 'child-result.json'),
      opts.cpuProfile ? join(root, 'cpu-profile') : undefined,
    )
    let written: Awaited<ReturnType<typeof writeSynthetic>>
    try {
      console.log(
        `Writing a synthetic Kelix-8B checkpoint (${opts.layers} layers, ${(parameters / 1e9).toFixed(2)} B parameters, ${(checkpointBytes / GB).toFixed(1)} GB bf16) to ${checkpointDir}`,
      )
      written = await writeSynthetic(checkpointDir, sizes, specs, largest)
    } catch (err) {
      converter.kill()
      throw err
    }
    const { seconds: writeSeconds, fillSeconds, shards } = written
    console.log(
      `written in ${writeSeconds.toFixed(1)} s (${fillSeconds.toFixed(1)} s of it filling values); converting in a child process`,
    )

    const { child, samples } = await converter.run()
    const convertSeconds = (child.endMs - child.startMs) / 1000
    const peakIn = (from: number, to: number) =>
      Math.max(0, ...samples.filter((s) => s.t >= from && s.t <= to).map((s) => s.rssKb)) * 1024
    const outputBytes = child.graphs.reduce((n, g) => n + g.dataBytes + g.graphBytes, 0)
    const graphs = child.graphs.map((g) => {
      const stage = child.stages.find((s) => s.file === g.file)
      const seconds = stage === undefined ? Number.NaN : (stage.endMs - stage.startMs) / 1000
      return {
        file: g.file,
        dataGB: g.dataBytes / GB,
        graphMB: g.graphBytes / 1e6,
        parameters: g.parameters,
        seconds,
        GBPerSecond: g.dataBytes / GB / seconds,
        peakRssGB: stage === undefined ? Number.NaN : peakIn(stage.startMs, stage.endMs + SAMPLE_MS) / GB,
      }
    })
    const peakRss = child.vmHwmKb * 1024
    const bound = 2 * GB + largestBytes
    return {
      layers: opts.layers,
      parameters,
      tensors: specs.length,
      shards,
      checkpointGB: checkpointBytes / GB,
      outputGB: outputBytes / GB,
      outputEstimateGB: outputEstimate / GB,
      graphs,
      writeSeconds,
      fillSeconds,
      prepareSeconds: child.prepareSeconds,
      convertSeconds,
      checkpointGBPerSecond: checkpointBytes / GB / convertSeconds,
      secondsPerCheckpointGB: convertSeconds / (checkpointBytes / GB),
      secondsPerOutputGB: convertSeconds / (outputBytes / GB),
      peakRssGB: peakRss / GB,
      maxRssGB: (child.maxRssKb * 1024) / GB,
      parentRssAtSpawnGB: converter.parentRssAtSpawn / GB,
      sampledPeakRssGB: (Math.max(0, ...samples.map((s) => s.rssKb)) * 1024) / GB,
      vmHwmGB: (Math.max(0, ...samples.map((s) => s.hwmKb)) * 1024) / GB,
      largestTensor: { key: largest.key, shape: largest.shape, fp32GB: largestBytes / GB },
      rssBoundGB: bound / GB,
      withinBound: peakRss <= bound,
      disk: { dir: base, freeGB: free / GB, neededGB: needed / GB },
      kept: keep ? root : null,
    }
  } finally {
    if (!keep) {
      await rm(root, { recursive: true, force: true })
      process.off('SIGINT', onSignal).off('SIGTERM', onSignal)
    }
  }
}

/** Writes the checkpoint, one tensor at a time, into one reused buffer the size of the largest tensor. */
export async function writeSynthetic(
  dir: string,
  sizes: KelixCheckpointSizes,
  specs: readonly TensorSpec[],
  largest: TensorSpec,
): Promise<{ seconds: number; fillSeconds: number; shards: number }> {
  const buffer = new Float32Array(elements(largest.shape))
  const inits = new Map(specs.map((s) => [s.key, s.init]))
  const { tokenizerJson, tokenizerConfig } = await kelixTokenizerFiles()
  const json = (value: object) => `${JSON.stringify(value, null, 2)}\n`
  const pixelsPerPosition = 28 * 28
  let fillSeconds = 0
  let count = 0
  const started = performance.now()
  await writeCheckpointStreaming(
    dir,
    specs,
    (key, shape) => {
      const t0 = performance.now()
      const init = inits.get(key) ?? { std: 1 }
      const values = buffer.subarray(0, elements(shape))
      fillRandom(values, fnv1a(key), init.std, init.center ?? 0)
      fillSeconds += (performance.now() - t0) / 1000
      if (++count % 50 === 0 || elements(shape) > 1e8)
        process.stderr.write(
          `  ${count}/${specs.length} tensors, ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
        )
      return values
    },
    {
      dtype: 'BF16',
      shardBytes: SHARD_BYTES,
      extraFiles: {
        'config.json': json(keyeArConfig(sizes)),
        'tokenizer.json': json(tokenizerJson),
        'tokenizer_config.json': json(tokenizerConfig),
        'preprocessor_config.json': json({
          image_processor_type: 'Qwen2VLImageProcessor',
          patch_size: sizes.vision.patchSize,
          merge_size: 2,
          temporal_patch_size: 1,
          min_pixels: 32 * pixelsPerPosition,
          max_pixels: 1280 * pixelsPerPosition,
          image_mean: [0.5, 0.5, 0.5],
          image_std: [0.5, 0.5, 0.5],
          resample: 3,
        }),
      },
    },
  )
  const seconds = (performance.now() - started) / 1000
  const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8')) as {
    weight_map: Record<string, string>
  }
  return { seconds, fillSeconds, shards: new Set(Object.values(index.weight_map)).size }
}

interface RssSample {
  t: number
  rssKb: number
  hwmKb: number
}

interface ConverterChild {
  /** The parent's resident bytes when it forked the child (they count in the child's maxRSS). */
  parentRssAtSpawn: number
  /** Starts the conversion; resolves when the child has exited, with its result and the RSS samples. */
  run(): Promise<{ child: ChildResult; samples: RssSample[] }>
  kill(): void
}

/**
 * Spawns bench/convert-child.ts under `node --import tsx`, before the checkpoint
 * is written (see convert-child.ts on maxRSS); `run` tells it to go and samples
 * /proc/<pid>/status every 200 ms until it exits.
 */
function spawnConverter(from: string, out: string, resultPath: string, profileDir?: string): ConverterChild {
  const args = [
    '--import',
    'tsx',
    ...(profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir]),
    join(REPO, 'bench', 'convert-child.ts'),
    from,
    out,
    resultPath,
  ]
  const parentRssAtSpawn = process.memoryUsage().rss
  const child = spawn(process.execPath, args, { cwd: REPO, stdio: ['pipe', 'inherit', 'inherit'] })
  const exited = new Promise<number | null>((done, fail) => {
    child.once('error', fail)
    child.once('exit', (exitCode, signal) => done(signal === null ? exitCode : -1))
  })
  // Until `run`, a failure only matters if the run goes on.
  exited.catch(() => {})
  return {
    parentRssAtSpawn,
    kill: () => void child.kill(),
    async run() {
      const samples: RssSample[] = []
      const status = `/proc/${child.pid}/status`
      const sample = async () => {
        try {
          const text = await readFile(status, 'utf8')
          const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN)
          samples.push({ t: Date.now(), rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') })
        } catch {
          // The child has exited between two samples.
        }
      }
      const timer = setInterval(() => void sample(), SAMPLE_MS)
      child.stdin?.end('go\n')
      const code = await exited.finally(() => clearInterval(timer))
      if (code !== 0 || !existsSync(resultPath)) {
        const last = samples.at(-1)
        throw new Error(
          `the converter child exited with code ${code}${last === undefined ? '' : `, last RSS ${(last.rssKb / 1e6).toFixed(2)} GB`}`,
        )
      }
      return { child: JSON.parse(await readFile(resultPath, 'utf8')) as ChildResult, samples }
    },
  }
}

/** Prints the result as two tables. */
export function printConvertBench(r: ConvertBenchResult): void {
  console.log(`\nConverter at Kelix-8B shapes, ${r.layers} LLM layers (GB = 10^9 bytes)\n`)
  const rows: Array<[string, string | number]> = [
    ['layers', r.layers],
    ['parameters (B)', r.parameters / 1e9],
    ['checkpoint GB (bf16)', r.checkpointGB],
    ['shards (4 GiB)', r.shards],
    ['output GB (fp32, all graphs)', r.outputGB],
    ['write s', r.writeSeconds],
    ['  of which filling values s', r.fillSeconds],
    ['convert s', r.convertSeconds],
    ['  of which open + build graphs s', r.prepareSeconds],
    ['checkpoint GB/s', r.checkpointGBPerSecond],
    ['s per checkpoint GB read', r.secondsPerCheckpointGB],
    ['s per output GB written', r.secondsPerOutputGB],
    ['converter peak RSS GB (child VmHWM)', r.peakRssGB],
    ['child maxRSS GB (incl. parent at fork)', r.maxRssGB],
    ['  parent RSS at fork GB', r.parentRssAtSpawnGB],
    ['sampled peak RSS GB (VmRSS, 200 ms)', r.sampledPeakRssGB],
    ['largest tensor fp32 GB', r.largestTensor.fp32GB],
    ['bound: 2 GB + largest tensor', r.rssBoundGB],
    ['peak RSS within bound', r.withinBound ? 'yes' : 'NO'],
  ]
  console.log(formatTable(rows.map(([measure, value]) => ({ measure, value }))))
  console.log('')
  console.log(
    formatTable(
      r.graphs.map((g) => ({
        graph: g.file,
        'data GB': g.dataGB,
        'graph MB': g.graphMB,
        parameters: g.parameters,
        'write s': g.seconds,
        'GB/s': g.GBPerSecond,
        'peak RSS GB': g.peakRssGB,
      })),
    ),
  )
  if (r.kept !== null) console.log(`\nkept ${r.kept}`)
}
