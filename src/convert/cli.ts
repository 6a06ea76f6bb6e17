/**
 * `npm run convert -- --from CHECKPOINT_DIR --out MODEL_DIR [options]`: converts
 * a checkpoint in the published Kelix layout (OpenOneRec/Kelix-SFT) into a
 * model directory Kelix Serve serves. Prints progress, then a summary.
 */
import { parseArgs } from 'node:util'
import { convertCheckpoint, type ConversionSummary } from './convert.js'
import { ConvertError } from './errors.js'
import { consoleProgress } from './progress.js'

const HELP = `Usage: npm run convert -- --from CHECKPOINT_DIR --out MODEL_DIR [options]

Converts a Kelix checkpoint in the published layout (config.json with KeyeARConfig,
safetensors shards and model.safetensors.index.json, tokenizer files) into a model
directory for Kelix Serve (docs/model-format.md). The output appears only when complete.

  --from DIR                       the checkpoint directory (required)
  --out DIR                        the model directory to write (required)
  --name NAME                      served model name (default: the output directory's name)
  --overwrite                      replace MODEL_DIR if it exists and is not empty
  --low-detail-max-positions N     position cap for image_url.detail "low" (default 256)
  --row-marker TEXT                an image row's marker text, {row} and {cols} filled in
                                   (default "{row},{cols}")
  -h, --help                       this text`

/** Thrown for a bad command line: printed as one line, exit 2. */
class UsageError extends Error {}

function options() {
  let parsed
  try {
    parsed = parseArgs({
      options: {
        from: { type: 'string' },
        out: { type: 'string' },
        name: { type: 'string' },
        overwrite: { type: 'boolean' },
        'low-detail-max-positions': { type: 'string' },
        'row-marker': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  if (parsed.help) {
    console.log(HELP)
    process.exit(0)
  }
  if (parsed.from === undefined || parsed.out === undefined) throw new UsageError('--from and --out are required (see --help)')
  const lowDetail = parsed['low-detail-max-positions']
  const cap = lowDetail === undefined ? undefined : Number(lowDetail)
  if (cap !== undefined && !(Number.isInteger(cap) && cap > 0)) throw new UsageError(`--low-detail-max-positions must be a positive integer, got ${lowDetail}`)
  const marker = parsed['row-marker']
  if (marker !== undefined && !marker.includes('{row}')) throw new UsageError(`--row-marker must contain {row}, got ${JSON.stringify(marker)}`)
  return {
    from: parsed.from,
    out: parsed.out,
    overwrite: parsed.overwrite === true,
    ...(parsed.name === undefined ? {} : { name: parsed.name }),
    ...(cap === undefined ? {} : { lowDetailMaxPositions: cap }),
    ...(marker === undefined ? {} : { rowMarker: marker }),
  }
}

function printSummary(out: string, s: ConversionSummary): void {
  const gb = (bytes: number) => `${(bytes / 1e9).toFixed(3)} GB`
  console.log(`\nwrote ${out} (${s.config.name}) in ${s.seconds.toFixed(1)} s`)
  for (const g of s.graphs) console.log(`  ${g.file.padEnd(22)} ${(g.parameters / 1e6).toFixed(1).padStart(9)} M parameters  ${gb(g.dataBytes)} data  ${(g.graphBytes / 1024).toFixed(0)} KiB graph`)
  if (s.unused.length > 0) {
    console.log('  not used by any graph:')
    for (const u of s.unused) console.log(`    ${u.family} (${u.tensors} tensor${u.tensors === 1 ? '' : 's'}, ${(u.parameters / 1e6).toFixed(2)} M parameters)`)
  }
  for (const p of s.partlyUsed) console.log(`  read in part: ${p.family} (${p.tensors} tensor${p.tensors === 1 ? '' : 's'}, rows ${p.rows} of ${p.of} each)`)
  if (s.unindexed.length > 0) console.log(`  in a shard but not in the index (ignored): ${s.unindexed.join(', ')}`)
}

try {
  const opts = options()
  printSummary(opts.out, await convertCheckpoint({ ...opts, progress: consoleProgress() }))
} catch (err) {
  if (err instanceof UsageError) {
    console.error(`convert: ${err.message}`)
    process.exit(2)
  }
  if (err instanceof ConvertError) {
    console.error(`convert: ${err.code}: ${err.message}`)
    process.exit(1)
  }
  throw err
}
