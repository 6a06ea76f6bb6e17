/**
 * Image generation benchmark (`npm run bench -- --mode image [--quick] [--no-real] [--keep] [--dir DIR]`).
 *
 * Tiny model: the time of one denoise step (one dit.onnx call) at 1, 2 and 4 DiT rows, of one VAE
 * decode, and images per minute end to end through the engine worker, one request at a time.
 *
 * Real sizes (skipped with --no-real): a random Kelix-DiT (1.62 B parameters) and DC-AE decoder
 * written as checkpoints, built into dit.onnx / vae_decoder.onnx as the converter does, then one
 * denoise step at 1 row (guidance 1) and 2 rows (guidance ≠ 1: unconditional + conditional) and one
 * 1024×1024 decode, so the cost of a real image on this machine is known. About 10 GB of temporary
 * files under --dir, removed at the end unless --keep.
 *
 * The machine's speed drifts by ±20% within minutes: every figure is a median, and what is
 * compared is measured in alternation. GB here are 10^9 bytes.
 */
import { rmSync } from 'node:fs'
import { mkdir, readFile, rm, statfs } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import ort from 'onnxruntime-node'
import { startEngine } from '../src/batching/http-thread/engine-client.js'
import { dcAeConfigJson, dcAeDecoderTensorSpecs, KELIX_VAE_SIZES } from '../src/builder/dc-ae-checkpoint-layout.js'
import { buildDcAeDecoder } from '../src/builder/dc-ae-decoder.js'
import { GraphBuilder, type BuiltGraph } from '../src/builder/graph.js'
import type { TensorSpec } from '../src/builder/kelix-checkpoint-layout.js'
import { KELIX_DIT_SIZES, sanaConfigJson, sanaTensorSpecs } from '../src/builder/sana-checkpoint-layout.js'
import { buildSanaDit } from '../src/builder/sana-dit.js'
import { elementCount } from '../src/builder/tensor-data.js'
import { seededValues } from '../src/builder/tiny-checkpoint.js'
import { SeededWeights } from '../src/builder/weights.js'
import { Checkpoint, writeCheckpointStreaming } from '../src/convert/checkpoint.js'
import { CheckpointTensors } from '../src/convert/checkpoint-weights.js'
import { parseDcAeConfig } from '../src/convert/dc-ae-config.js'
import { KELIX_SAMPLER } from '../src/convert/image-decoder.js'
import { parseSanaConfig, sanaConditionLength } from '../src/convert/sana-config.js'
import { padCondition } from '../src/engine/image-gen/condition.js'
import { DenoiseJob, denoiseStepBatched } from '../src/engine/image-gen/flow-matching.js'
import { decodeImages } from '../src/engine/image-gen/image-output.js'
import { loadModel, modelSessionOptions } from '../src/engine/model.js'
import { GREEDY } from '../src/engine/types.js'
import { formatTable } from './table.js'

const GB = 1e9
/** The upload script's shard size. */
const SHARD_BYTES = 4 * 1024 ** 3
/** Kelix's 18×18 grid writes a span of 442 positions into the DiT's 720-long condition. */
const KELIX_SPAN = 442
const GUIDED = 4.5
const random = new SeededWeights(20_250_101)

export interface ImageBenchOptions {
  modelDir: string
  /** ONNX Runtime intra-op threads, as the server uses. */
  threads: number
  quick: boolean
  /** Also measure the DiT and VAE at the real sizes. */
  real: boolean
  keep: boolean
  /** Where the real-size files go. */
  dir: string
}

/** A timing over several calls: the median, and the spread as the fastest and slowest. */
export interface Timing {
  calls: number
  medianMs: number
  minMs: number
  maxMs: number
}

export interface TinyImageResult {
  threads: number
  condition: { length: number; span: number; hidden: number }
  /** One denoise step (one dit.onnx call) per case, and one VAE decode. */
  steps: Array<{ case: string; images: number; guidance: number; ditRows: number } & Timing>
  vaeDecode: Timing
  /** End to end through the engine worker (token phase, denoise, VAE, PNG), n = 1, one request at a time. */
  endToEnd: Array<{
    guidance: number
    denoiseSteps: number
    total: Timing
    tokenPhaseMedianMs: number
    imagesPerMinute: number
  }>
}

export interface RealImageResult {
  threads: number
  dit: {
    parameters: number
    checkpointGB: number
    dataGB: number
    writeSeconds: number
    buildSeconds: number
    loadSeconds: number
    stepB1: Timing
    stepB2: Timing
    peakRssGB: number
  }
  vae: {
    parameters: number
    dataGB: number
    writeBuildSeconds: number
    loadSeconds: number
    decode: Timing
    imageSize: number
    peakRssGB: number
  }
  /** 50 Euler steps (Kelix's sampler) plus one decode, token phase excluded. */
  projection: {
    steps: number
    ditSecondsGuidance1: number
    ditSecondsGuided: number
    imageSecondsGuidance1: number
    imageSecondsGuided: number
  }
  disk: { dir: string; freeGB: number; neededGB: number }
  kept: string | null
}

export interface ImageBenchResult {
  tiny: TinyImageResult
  real: RealImageResult | null
}

export async function benchImages(opts: ImageBenchOptions): Promise<ImageBenchResult> {
  const tiny = await benchTiny(opts)
  return { tiny, real: opts.real ? await benchReal(opts) : null }
}

function timing(ms: readonly number[]): Timing {
  const sorted = [...ms].sort((a, b) => a - b)
  const mid = sorted.length / 2
  const medianMs =
    sorted.length % 2 === 1
      ? (sorted[Math.floor(mid)] as number)
      : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
  return { calls: sorted.length, medianMs, minMs: sorted[0] ?? Number.NaN, maxMs: sorted.at(-1) ?? Number.NaN }
}

async function timed(run: () => Promise<unknown>): Promise<number> {
  const start = performance.now()
  await run()
  return performance.now() - start
}

const peakRssGB = () => (process.resourceUsage().maxRSS * 1024) / GB

async function benchTiny(opts: ImageBenchOptions): Promise<TinyImageResult> {
  const model = await loadModel(opts.modelDir, { intraOpThreads: opts.threads })
  const decoder = model.imageDecoder
  if (decoder === undefined) throw new Error(`${opts.modelDir} has no image decoder`)
  const { config } = decoder
  const { condition_length: length, latent_channels: channels, latent_size: side } = config.image_generation
  const hidden = config.llm.hidden_size
  // The same share of the condition as Kelix's span; the cost does not depend on it (the mask only).
  const span = Math.max(1, Math.round((length * KELIX_SPAN) / 720))
  const condition = padCondition(config, random.random('span', span * hidden, 1))

  const cases = [
    { case: '1 image, guidance 1', images: 1, guidance: 1, ditRows: 1 },
    { case: `1 image, guidance ${GUIDED}`, images: 1, guidance: GUIDED, ditRows: 2 },
    { case: '4 images, guidance 1', images: 4, guidance: 1, ditRows: 4 },
  ]
  const stepMs = cases.map((): number[] => [])
  const vaeMs: number[] = []
  const latents = random.random('latents', channels * side * side, 1)
  const warmup = opts.quick ? 1 : 2
  const calls = opts.quick ? 3 : 10
  // Round-robin over the cases, so drift hits them alike; fresh jobs each time (a job's steps run out).
  for (let round = 0; round < warmup + calls; round++) {
    for (const [i, c] of cases.entries()) {
      const jobs = Array.from(
        { length: c.images },
        (_, seed) => new DenoiseJob(decoder, { ...condition, seed }, { guidance: c.guidance }),
      )
      const ms = await timed(() => denoiseStepBatched(decoder, jobs))
      if (round >= warmup) stepMs[i]?.push(ms)
    }
    const ms = await timed(() => decodeImages(decoder, [latents]))
    if (round >= warmup) vaeMs.push(ms)
  }
  await model.dispose()

  return {
    threads: opts.threads,
    condition: { length, span, hidden },
    steps: cases.map((c, i) => ({ ...c, ...timing(stepMs[i] ?? []) })),
    vaeDecode: timing(vaeMs),
    endToEnd: await imagesOneAtATime(opts, config.image_generation.steps),
  }
}

/** Images one request at a time through the engine worker, the two guidance scales alternating. */
async function imagesOneAtATime(opts: ImageBenchOptions, denoiseSteps: number): Promise<TinyImageResult['endToEnd']> {
  const engine = await startEngine({ modelDir: opts.modelDir, intraOpThreads: opts.threads })
  const guidances = [1, GUIDED]
  const totals = guidances.map((): number[] => [])
  const tokenPhases = guidances.map((): number[] => [])
  try {
    const count = opts.quick ? 3 : 8
    for (let i = -1; i < count; i++) {
      for (const [g, guidance] of guidances.entries()) {
        const seed = 1000 * g + i + 1
        // The API's defaults: temperature 1 for the token phase, nothing else.
        const request = {
          prompt: `Image ${seed}: a lighthouse at dusk`,
          n: 1,
          sampling: { ...GREEDY, temperature: 1, seed },
          guidance,
        }
        const start = performance.now()
        let tokensEnd = Number.NaN
        const generation = await engine.generateImages(request)
        for await (const event of generation.events) {
          if (event.type === 'progress' && event.phase === 'tokens') tokensEnd = performance.now()
          else if (event.type === 'error')
            throw new Error(`image generation failed: ${event.error.code}: ${event.error.message}`)
        }
        // i = −1 is the warm-up.
        if (i < 0) continue
        totals[g]?.push(performance.now() - start)
        tokenPhases[g]?.push(tokensEnd - start)
      }
    }
  } finally {
    await engine.close()
  }
  return guidances.map((guidance, g) => {
    const total = timing(totals[g] ?? [])
    return {
      guidance,
      denoiseSteps,
      total,
      tokenPhaseMedianMs: timing(tokenPhases[g] ?? []).medianMs,
      imagesPerMinute: 60_000 / total.medianMs,
    }
  })
}

const json = (value: object) => `${JSON.stringify(value, null, 2)}\n`

/** A checkpoint with random values from each spec's init, one tensor in memory at a time. */
async function writeRandomCheckpoint(
  dir: string,
  specs: readonly TensorSpec[],
  dtype: 'BF16' | 'F32',
  config: object,
): Promise<void> {
  const byKey = new Map(specs.map((s) => [s.key, s]))
  await writeCheckpointStreaming(dir, specs, (key) => seededValues(random, byKey.get(key) as TensorSpec), {
    dtype,
    shardBytes: SHARD_BYTES,
    extraFiles: { 'config.json': json(config) },
  })
}

/** Opens the checkpoint in `dir`, builds the graph over its tensors and saves it; returns the external data bytes. */
async function buildFrom(
  dir: string,
  path: string,
  build: (checkpoint: Checkpoint, config: string) => BuiltGraph,
): Promise<number> {
  const checkpoint = await Checkpoint.open(dir)
  try {
    const saved = await build(checkpoint, await readFile(join(dir, 'config.json'), 'utf8')).save(path)
    return saved.dataBytes
  } finally {
    await checkpoint.close()
  }
}

/** A session as the server opens one. */
function openSession(path: string, threads: number): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(path, modelSessionOptions({ intraOpThreads: threads }))
}

/** The feeds of one denoise step at the real sizes: `rows` = 1 (guidance 1) or 2 ([unconditional, conditional]). */
function ditFeeds(rows: 1 | 2): Record<string, ort.Tensor> {
  const { inChannels: c, inputSize: s, conditionLength: length, connectorChannels: hidden } = KELIX_DIT_SIZES
  const condition = new Float32Array(rows * length * hidden)
  const mask = new BigInt64Array(rows * length)
  for (let r = 0; r < rows; r++) {
    condition.set(random.random('condition', KELIX_SPAN * hidden, 1), r * length * hidden)
    mask.fill(1n, r * length, r * length + KELIX_SPAN)
  }
  return {
    latents: new ort.Tensor('float32', random.random('latents', rows * c * s * s, 1), [rows, c, s, s]),
    timestep: new ort.Tensor('float32', new Float32Array(rows).fill(0.5), [rows]),
    condition: new ort.Tensor('float32', condition, [rows, length, hidden]),
    condition_mask: new ort.Tensor('int64', mask, [rows, length]),
    unconditional: new ort.Tensor('bool', rows === 1 ? [false] : [true, false], [rows]),
  }
}

async function benchReal(opts: ImageBenchOptions): Promise<RealImageResult> {
  const ditSpecs = sanaTensorSpecs(KELIX_DIT_SIZES)
  const vaeSpecs = dcAeDecoderTensorSpecs(KELIX_VAE_SIZES)
  const count = (specs: readonly TensorSpec[]) => specs.reduce((n, s) => n + elementCount(s.shape), 0)
  const ditParameters = count(ditSpecs)
  const vaeParameters = count(vaeSpecs)

  const base = resolve(opts.dir)
  await mkdir(base, { recursive: true })
  const fs = await statfs(base)
  const free = fs.bavail * fs.bsize
  // bf16 DiT checkpoint + fp32 dit.onnx, fp32 VAE checkpoint + fp32 vae_decoder.onnx, + 10%.
  const needed = Math.ceil((6 * ditParameters + 8 * vaeParameters) * 1.1)
  if (free < needed)
    throw new Error(
      `not enough disk space in ${base}: the real-size DiT and VAE need about ${(needed / GB).toFixed(1)} GB, ${(free / GB).toFixed(1)} GB are free. Use --dir DIR on a larger disk, or --no-real.`,
    )

  const root = join(base, `kelix-image-bench-${process.pid}`)
  // An interrupted run must not leave gigabytes behind.
  const onSignal = (signal: NodeJS.Signals) => {
    if (!opts.keep) rmSync(root, { recursive: true, force: true })
    process.kill(process.pid, signal)
  }
  if (!opts.keep) process.once('SIGINT', onSignal).once('SIGTERM', onSignal)
  try {
    const dit = await benchRealDit(root, opts, ditParameters, ditSpecs)
    const vae = await benchRealVae(root, opts, vaeParameters, vaeSpecs)
    const steps = KELIX_SAMPLER.steps
    const ditSecondsGuidance1 = (steps * dit.stepB1.medianMs) / 1000
    const ditSecondsGuided = (steps * dit.stepB2.medianMs) / 1000
    return {
      threads: opts.threads,
      dit,
      vae,
      projection: {
        steps,
        ditSecondsGuidance1,
        ditSecondsGuided,
        imageSecondsGuidance1: ditSecondsGuidance1 + vae.decode.medianMs / 1000,
        imageSecondsGuided: ditSecondsGuided + vae.decode.medianMs / 1000,
      },
      disk: { dir: base, freeGB: free / GB, neededGB: needed / GB },
      kept: opts.keep ? root : null,
    }
  } finally {
    if (!opts.keep) {
      await rm(root, { recursive: true, force: true })
      process.off('SIGINT', onSignal).off('SIGTERM', onSignal)
    }
  }
}

async function benchRealDit(
  root: string,
  opts: ImageBenchOptions,
  parameters: number,
  specs: readonly TensorSpec[],
): Promise<RealImageResult['dit']> {
  const checkpointDir = join(root, 'dit')
  const path = join(root, 'dit.onnx')
  console.error(
    `image bench: writing a random Kelix-DiT checkpoint (${(parameters / 1e9).toFixed(2)} B parameters, bf16) to ${checkpointDir}`,
  )
  const writeSeconds =
    (await timed(() => writeRandomCheckpoint(checkpointDir, specs, 'BF16', sanaConfigJson(KELIX_DIT_SIZES)))) / 1000
  console.error(`image bench: written in ${writeSeconds.toFixed(1)} s; building dit.onnx`)
  let dataBytes = 0
  const buildSeconds =
    (await timed(async () => {
      dataBytes = await buildFrom(checkpointDir, path, (checkpoint, config) =>
        buildSanaDit(
          { g: new GraphBuilder('kelix_dit'), w: new CheckpointTensors(checkpoint) },
          { config: parseSanaConfig(config), conditionLength: sanaConditionLength(checkpoint) },
        ),
      )
    })) / 1000
  // The checkpoint is no longer needed; free its disk before the slow part.
  await rm(checkpointDir, { recursive: true, force: true })
  console.error(
    `image bench: built in ${buildSeconds.toFixed(1)} s (${(dataBytes / GB).toFixed(2)} GB of data); loading it`,
  )

  let session: ort.InferenceSession | undefined
  const loadSeconds = (await timed(async () => (session = await openSession(path, opts.threads)))) / 1000
  const dit = session as ort.InferenceSession
  try {
    const feeds = { 1: ditFeeds(1), 2: ditFeeds(2) }
    const ms: Record<1 | 2, number[]> = { 1: [], 2: [] }
    const runs = opts.quick ? 1 : 3
    // One warm-up at the larger batch sizes ONNX Runtime's arena for both; then the two alternate.
    const warmupMs = await timed(() => dit.run(feeds[2]))
    console.error(
      `image bench: loaded in ${loadSeconds.toFixed(1)} s; warm-up step (2 rows) ${(warmupMs / 1000).toFixed(1)} s; timing ${runs} × (1 row, 2 rows)`,
    )
    for (let r = 0; r < runs; r++) {
      for (const rows of [1, 2] as const) {
        ms[rows].push(await timed(() => dit.run(feeds[rows])))
        console.error(`image bench:   ${rows} row(s): ${((ms[rows].at(-1) ?? 0) / 1000).toFixed(1)} s`)
      }
    }
    return {
      parameters,
      checkpointGB: (2 * parameters) / GB,
      dataGB: dataBytes / GB,
      writeSeconds,
      buildSeconds,
      loadSeconds,
      stepB1: timing(ms[1]),
      stepB2: timing(ms[2]),
      peakRssGB: peakRssGB(),
    }
  } finally {
    await dit.release()
    await rm(path, { force: true })
    await rm(`${path}.data`, { force: true })
  }
}

async function benchRealVae(
  root: string,
  opts: ImageBenchOptions,
  parameters: number,
  specs: readonly TensorSpec[],
): Promise<RealImageResult['vae']> {
  const checkpointDir = join(root, 'vae')
  const path = join(root, 'vae_decoder.onnx')
  const latentSize = KELIX_DIT_SIZES.inputSize
  let dataBytes = 0
  console.error(
    `image bench: writing a random DC-AE decoder (${(parameters / 1e6).toFixed(0)} M parameters, float32) and building vae_decoder.onnx`,
  )
  const writeBuildSeconds =
    (await timed(async () => {
      await writeRandomCheckpoint(checkpointDir, specs, 'F32', dcAeConfigJson(KELIX_VAE_SIZES))
      dataBytes = await buildFrom(checkpointDir, path, (checkpoint, config) =>
        buildDcAeDecoder(
          { g: new GraphBuilder('kelix_vae_decoder'), w: new CheckpointTensors(checkpoint) },
          parseDcAeConfig(config),
          latentSize,
        ),
      )
    })) / 1000
  let session: ort.InferenceSession | undefined
  const loadSeconds = (await timed(async () => (session = await openSession(path, opts.threads)))) / 1000
  const vae = session as ort.InferenceSession
  try {
    const c = KELIX_VAE_SIZES.latentChannels
    const feeds = {
      latents: new ort.Tensor('float32', random.random('vae latents', c * latentSize * latentSize, 1), [
        1,
        c,
        latentSize,
        latentSize,
      ]),
    }
    // A decode takes most of a minute here: one warm-up and one timed run (with --quick, the first run is the timed one).
    if (!opts.quick)
      console.error(`image bench: VAE warm-up decode ${((await timed(() => vae.run(feeds))) / 1000).toFixed(1)} s`)
    let imageSize = 0
    const decodeMs = await timed(async () => (imageSize = (await vae.run(feeds)).image?.dims[3] ?? 0))
    return {
      parameters,
      dataGB: dataBytes / GB,
      writeBuildSeconds,
      loadSeconds,
      decode: timing([decodeMs]),
      imageSize,
      peakRssGB: peakRssGB(),
    }
  } finally {
    await vae.release()
  }
}

/** Prints the result as tables. */
export function printImageBench(r: ImageBenchResult): void {
  const { tiny } = r
  console.log(
    `Image generation, tiny model (${tiny.threads} intra-op thread(s), as the server; condition ${tiny.condition.span} of ${tiny.condition.length} positions, hidden ${tiny.condition.hidden})\n`,
  )
  const spread = (t: Timing) => `${t.minMs.toFixed(2)}–${t.maxMs.toFixed(2)}`
  console.log(
    formatTable([
      ...tiny.steps.map((s) => ({
        'one call of': `DiT step: ${s.case}`,
        'DiT rows': s.ditRows,
        calls: s.calls,
        'median ms': s.medianMs,
        'min–max ms': spread(s),
        'ms per row': s.medianMs / s.ditRows,
      })),
      {
        'one call of': 'VAE decode: 1 image',
        'DiT rows': '',
        calls: tiny.vaeDecode.calls,
        'median ms': tiny.vaeDecode.medianMs,
        'min–max ms': spread(tiny.vaeDecode),
        'ms per row': '',
      },
    ]),
  )
  console.log(
    '\nEnd to end through the engine worker, n = 1, one request at a time (token phase + denoise + VAE + PNG), the guidance scales alternating\n',
  )
  console.log(
    formatTable(
      tiny.endToEnd.map((e) => ({
        guidance: e.guidance,
        'denoise steps': e.denoiseSteps,
        images: e.total.calls,
        'median ms': e.total.medianMs,
        'min–max ms': spread(e.total),
        'token phase ms': e.tokenPhaseMedianMs,
        'images/min': e.imagesPerMinute,
      })),
    ),
  )
  const real = r.real
  if (real === null) return
  const { dit, vae, projection: p } = real
  console.log(
    `\nSynthetic real-size image decoder (random weights, ${real.threads} intra-op thread(s); GB = 10^9 bytes)\n`,
  )
  const rows: Array<[string, string | number]> = [
    ['DiT parameters (B)', dit.parameters / 1e9],
    ['DiT checkpoint GB (bf16)', dit.checkpointGB],
    ['dit.onnx data GB (fp32)', dit.dataGB],
    ['DiT checkpoint write s', dit.writeSeconds],
    ['dit.onnx build + save s', dit.buildSeconds],
    ['dit.onnx session load s', dit.loadSeconds],
    [`DiT step ms, 1 row (guidance 1), median of ${dit.stepB1.calls}`, dit.stepB1.medianMs],
    [`DiT step ms, 2 rows (guidance ≠ 1), median of ${dit.stepB2.calls}`, dit.stepB2.medianMs],
    ['peak RSS GB after the DiT (maxRSS)', dit.peakRssGB],
    ['VAE decoder parameters (M)', vae.parameters / 1e6],
    ['vae_decoder.onnx data GB (fp32)', vae.dataGB],
    ['VAE checkpoint write + build s', vae.writeBuildSeconds],
    ['vae_decoder.onnx session load s', vae.loadSeconds],
    [`VAE decode ms, 32×32 latents → ${vae.imageSize}×${vae.imageSize}`, vae.decode.medianMs],
    ['peak RSS GB at the end (maxRSS)', vae.peakRssGB],
    [`DiT s per image, ${p.steps} steps, guidance 1`, p.ditSecondsGuidance1],
    [`DiT s per image, ${p.steps} steps, guidance ≠ 1`, p.ditSecondsGuided],
  ]
  console.log(formatTable(rows.map(([measure, value]) => ({ measure, value }))))
  console.log(
    `\nA real ${vae.imageSize}×${vae.imageSize} image costs ≈ ${p.steps} × DiT step + 1 VAE decode = ${p.imageSecondsGuidance1.toFixed(0)} s on this machine at guidance 1 ` +
      `(Kelix's default), ${p.imageSecondsGuided.toFixed(0)} s at guidance ≠ 1; the LLM's token phase (the image's blocks) is not included.`,
  )
  if (real.kept !== null) console.log(`\nkept ${real.kept}`)
}
