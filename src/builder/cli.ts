/**
 * `npm run build:model [-- --out DIR] [--seed N]`: writes the tiny Kelix model
 * (default models/kelix-tiny), replacing what is there, and prints each file's hash.
 */
import { parseArgs } from 'node:util'
import { buildTinyModel, DEFAULT_MODEL_DIR, hashModelDir } from './build-model.js'
import { TINY_SEED } from './tiny.js'

const { values } = parseArgs({ options: { out: { type: 'string' }, seed: { type: 'string' } } })
const dir = values.out ?? DEFAULT_MODEL_DIR
const seed = values.seed === undefined ? TINY_SEED : Number(values.seed)
if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer, got ${values.seed}`)

const started = performance.now()
await buildTinyModel(dir, { seed })
for (const [name, hash] of Object.entries(await hashModelDir(dir))) console.log(`${hash}  ${name}`)
console.log(`wrote ${dir} in ${((performance.now() - started) / 1000).toFixed(1)} s`)
