/**
 * `npm run bench [-- --mode engine] [--quick]`: runs the benchmarks, prints
 * tables and writes JSON under bench/results/.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { parseArgs } from 'node:util'
import { ensureTinyModel, DEFAULT_MODEL_DIR } from '../src/builder/build-model.js'
import { loadModel } from '../src/engine/model.js'
import { benchEngine } from './engine-bench.js'
import { formatTable } from './table.js'

const { values } = parseArgs({ options: { mode: { type: 'string', default: 'engine' }, quick: { type: 'boolean', default: false } } })
if (values.mode !== 'engine') throw new Error(`--mode must be engine, got ${values.mode}`)

await ensureTinyModel(DEFAULT_MODEL_DIR)
const model = await loadModel(DEFAULT_MODEL_DIR)
const rows = await benchEngine(model, { batches: [1, 4, 16, 32], steps: values.quick ? 5 : 30, warmup: values.quick ? 1 : 3 })
await model.dispose()

console.log(`Raw engine, ${model.config.name}, decode steps (Node ${process.version}, ${cpus().length} cores)\n`)
console.log(
  formatTable(
    rows.map((r) => ({
      batch: r.batch,
      'kv fetch': r.kvFetch,
      'step ms': r.stepMsMean,
      'tokens/s': r.tokensPerSecond,
      'llm ms': r.llmMs,
      'block dec ms': r.blockDecoderMs,
      'sampling ms': r.samplingMs,
      'other ms': r.otherMs,
    })),
  ),
)
await mkdir(new URL('./results/', import.meta.url), { recursive: true })
const result = { mode: 'engine', model: model.config.name, node: process.version, cores: cpus().length, date: new Date().toISOString(), rows }
await writeFile(new URL('./results/engine.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`)
console.log('\nwrote bench/results/engine.json')
