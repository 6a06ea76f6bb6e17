/**
 * `kelix-serve build-tiny [--out DIR] [--seed N]` (and `npm run build:model`):
 * writes the tiny Kelix model (default models/kelix-tiny), replacing what is
 * there, and prints each file's hash.
 */
import { buildTinyModel, hashModelDir } from '../builder/build-model.js'
import { DEFAULT_MODEL_DIR } from '../builder/default-model-dir.js'
import { TINY_SEED } from '../builder/tiny.js'
import { UsageError, type Command } from './command.js'
import { parseFlags } from './flags.js'

const help = (usage: string) => `Usage: ${usage} [--out DIR] [--seed N]

Writes the tiny Kelix model, the embedded default the server builds on first start,
replacing what is there, and prints each file's hash.

  --out DIR     the model directory to write (default: models/kelix-tiny in this package)
  --seed N      the weights' random seed (default ${TINY_SEED})
  -h, --help    this text`

const OPTIONS = {
  out: { type: 'string' },
  seed: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

export const buildTiny: Command = async (argv, usage) => {
  const values = parseFlags(argv, OPTIONS)
  if (values.help) {
    console.log(help(usage))
    return 0
  }
  const dir = values.out ?? DEFAULT_MODEL_DIR
  const seed = values.seed === undefined ? TINY_SEED : Number(values.seed)
  if (!Number.isInteger(seed)) throw new UsageError(`--seed must be an integer, got ${values.seed}`)

  const started = performance.now()
  await buildTinyModel(dir, { seed })
  for (const [name, hash] of Object.entries(await hashModelDir(dir))) console.log(`${hash}  ${name}`)
  console.log(`wrote ${dir} in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  return 0
}
