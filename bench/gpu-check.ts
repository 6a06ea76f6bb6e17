/**
 * `npm run gpu-check [-- --quick] [--layers N] [--no-real] [--small | --small-dir DIR] [--dir DIR]`: what
 * a machine's GPUs give Kelix Serve, in one command, with nothing from the internet.
 *
 *   1. providers   cpu, cuda and webgpu each tried alone: loads, or why not
 *   2. bandwidth   the host's copy loop (bandwidth.ts), and a copy kernel on each GPU provider's device (device-copy.ts)
 *   3. engine      the tiny model's decode steps at batch 1, 8 and 32 on each provider, side by side,
 *                  with the KV cache bytes that cross host memory per step; also the small preset at
 *                  int4 (Qwen3-0.6B's LLM inside Kelix): --small writes its checkpoint and export into
 *                  --dir (~10 GB, a few minutes), --small-dir names one already converted
 *   4. real step   decoder.onnx at Kelix-8B shapes, random weights, int4 and int8, batch 1 and 8,
 *                  against its floor: weight bytes ÷ that provider's measured bandwidth (real-step.ts)
 *
 * Prints tables and writes bench/results/gpu-check.json. The real step writes ~5 GB (int4) and
 * ~9 GB (int8) at 36 layers into --dir (default: the system's temporary directory), removed after;
 * --layers N scales it (the floor scales alike).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { UsageError } from '../src/cli/command.js'
import { parseFlags } from '../src/cli/flags.js'
import { ensureTinyModel } from '../src/builder/build-model.js'
import { DEFAULT_MODEL_DIR } from '../src/builder/default-model-dir.js'
import { loadModel, type KelixModel } from '../src/engine/model.js'
import { chooseProviders, type ExecutionProvider } from '../src/engine/providers.js'
import type { Precision } from '../src/builder/precision.js'
import { BandwidthMeter } from './bandwidth.js'
import { ensureCheckpoint, ensureExport, presetPrecisions, presetSizes } from './preset-model.js'
import { measureDeviceCopy } from './device-copy.js'
import { benchEngine, type EngineBenchRow } from './engine-bench.js'
import { buildRealDecoder, SLOW_STEP_MS, timeRealStep, type RealStepRow } from './real-step.js'
import { formatTable } from './table.js'

const PROVIDERS: readonly ExecutionProvider[] = ['cpu', 'cuda', 'webgpu']
/** Batches of the real-size step; a provider that takes seconds a step skips the larger ones. */
const REAL_BATCHES = [1, 8]

const flags = (() => {
  try {
    return parseFlags(process.argv.slice(2), {
      quick: { type: 'boolean', default: false },
      layers: { type: 'string', default: '36' },
      'no-real': { type: 'boolean', default: false },
      small: { type: 'boolean', default: false },
      'small-dir': { type: 'string' },
      dir: { type: 'string' },
    })
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`gpu-check: ${err.message}`)
      process.exit(2)
    }
    throw err
  }
})()
const layers = Number(flags.layers)
if (!Number.isInteger(layers) || layers < 1) {
  console.error(`gpu-check: --layers must be a positive integer, got ${flags.layers}`)
  process.exit(2)
}
const quick = flags.quick ?? false

// 1. Providers.
const providers: Array<{ provider: ExecutionProvider; loads: boolean; why: string }> = []
for (const provider of PROVIDERS) {
  const outcome = await chooseProviders([provider]).then(
    () => ({ loads: true, why: '' }),
    (err: Error) => ({ loads: false, why: err.message.replace(/^none of \w+ could be loaded: \w+: /, '') }),
  )
  providers.push({ provider, ...outcome })
}
console.log(`Execution providers (Node ${process.version}, ${cpus().length} cores)\n`)
console.log(formatTable(providers.map((p) => ({ provider: p.provider, loads: p.loads ? 'yes' : 'no', why: p.why }))))
const available = providers.filter((p) => p.loads).map((p) => p.provider)

// 2. Bandwidth: the CPU's copy loop for the host, a copy kernel on each provider's device.
const bandwidth: Array<{ provider: ExecutionProvider; kernel: string; copyReadGBps: number }> = []
const hostCopy = await new BandwidthMeter().measure(cpus().length, { rounds: quick ? 2 : 8, trials: quick ? 1 : 3 })
bandwidth.push({ provider: 'cpu', kernel: 'TypedArray.set, all cores', copyReadGBps: hostCopy.copyReadGBps })
for (const provider of available.filter((p) => p !== 'cpu')) {
  const copy = await measureDeviceCopy(provider, { elements: (quick ? 32 : 256) * 1024 * 1024, trials: quick ? 2 : 5 })
  bandwidth.push({
    provider,
    kernel: `Mul over ${copy.elements / 1024 / 1024}M floats`,
    copyReadGBps: copy.copyReadGBps,
  })
}
console.log('\nMemory bandwidth (bytes read per second by a copy)\n')
console.log(
  formatTable(bandwidth.map((b) => ({ provider: b.provider, kernel: b.kernel, 'GB/s': b.copyReadGBps.toFixed(1) }))),
)
/** The provider's own device bandwidth: the copy kernel on its device, the copy loop for the CPU. */
const bandwidthOf = (provider: ExecutionProvider) =>
  (bandwidth.find((b) => b.provider === provider) as { copyReadGBps: number }).copyReadGBps

// Sections 3 and 4 write models into a scratch directory, removed however they end.
const engineRows: Array<EngineBenchRow & { model: string }> = []
const realRows: RealStepRow[] = []
const scratch = await mkdtemp(join(flags.dir ?? tmpdir(), 'kelix-gpu-check-'))
try {
  // 3. The engine on each provider, side by side (steps alternate between them).
  const models: Array<{ name: string; dir: string }> = [{ name: 'kelix-tiny', dir: DEFAULT_MODEL_DIR }]
  await ensureTinyModel(DEFAULT_MODEL_DIR)
  if (flags['small-dir'] !== undefined) models.push({ name: 'small preset, int4', dir: flags['small-dir'] })
  else if (flags.small ?? false) {
    const int4 = presetPrecisions('small').find((p) => p.name === 'int4') as { precision: Precision }
    const checkpoint = join(scratch, 'small-checkpoint')
    const dir = join(scratch, 'small-int4')
    console.log('\nwriting the small preset (checkpoint, then its int4 export)')
    await ensureCheckpoint(checkpoint, presetSizes('small'))
    await ensureExport(checkpoint, dir, int4.precision)
    await rm(checkpoint, { recursive: true, force: true })
    models.push({ name: 'small preset, int4', dir })
  }
  for (const { name, dir } of models) {
    const loaded: Array<{ graph: string; model: KelixModel }> = []
    for (const provider of available)
      loaded.push({ graph: provider, model: await loadModel(dir, { executionProviders: [provider] }) })
    const rows = await benchEngine(loaded, { batches: [1, 8, 32], steps: quick ? 3 : 20, warmup: quick ? 1 : 3 })
    engineRows.push(...rows.map((r) => ({ ...r, model: name })))
    await Promise.all(loaded.map((l) => l.model.dispose()))
  }
  console.log('\nEngine decode steps, each provider (raw engine, no HTTP)\n')
  console.log(
    formatTable(
      engineRows.map((r) => ({
        model: r.model,
        batch: r.batch,
        provider: r.graph,
        'step ms': r.stepMsMean.toFixed(2),
        'tokens/s': r.tokensPerSecond.toFixed(1),
        'llm ms': r.llmMs.toFixed(2),
        'block dec ms': r.blockDecoderMs.toFixed(2),
        'KV bytes via host/step': Math.round(r.kvHostBytesPerStep),
      })),
    ),
  )

  // 4. A real-size decoder step against its floor.
  if (!(flags['no-real'] ?? false)) {
    for (const precision of ['int4', 'int8'] as const) {
      const dir = join(scratch, precision)
      await mkdir(dir)
      const built = performance.now()
      const decoder = await buildRealDecoder(dir, precision, layers)
      console.log(
        `\nwrote decoder.onnx, ${precision}, ${layers} layers: ${(decoder.weightBytes / 1e9).toFixed(2)} GB of weights in ${((performance.now() - built) / 1000).toFixed(0)} s`,
      )
      for (const provider of available)
        for (const batch of REAL_BATCHES) {
          const row = await timeRealStep(decoder, provider, {
            batch,
            pastLength: 256,
            bandwidthGBps: bandwidthOf(provider),
            steps: quick ? 3 : 10,
          })
          realRows.push(row)
          if (row.stepMs > SLOW_STEP_MS && batch !== REAL_BATCHES.at(-1)) {
            console.log(`${provider}: ${row.stepMs.toFixed(0)} ms a step at batch ${batch}; larger batches skipped`)
            break
          }
        }
      await rm(dir, { recursive: true, force: true })
    }
    console.log(`\nReal-size decode step (Kelix-8B shapes, ${layers} of 36 layers, 256 cached positions)\n`)
    console.log(
      formatTable(
        realRows.map((r) => ({
          provider: r.provider,
          precision: r.precision,
          batch: r.batch,
          'step ms': r.stepMs.toFixed(2),
          'floor ms': r.floorMs.toFixed(2),
          'step/floor': r.ratio.toFixed(2),
          'KV bytes via host/step': Math.round(r.kvHostBytesPerStep),
        })),
      ),
    )
  }
} finally {
  await rm(scratch, { recursive: true, force: true })
}
await mkdir(new URL('./results/', import.meta.url), { recursive: true })
await writeFile(
  new URL('./results/gpu-check.json', import.meta.url),
  `${JSON.stringify({ node: process.version, cores: cpus().length, date: new Date().toISOString(), layers, providers, bandwidth, engine: engineRows, realStep: realRows }, null, 2)}\n`,
)
console.log('\nwrote bench/results/gpu-check.json')
