/**
 * `kelix-serve convert --from CHECKPOINT_DIR --out MODEL_DIR [options]` (and
 * `npm run convert -- ...`): converts a checkpoint in the published Kelix layout
 * (OpenOneRec/Kelix-SFT) into a model directory Kelix Serve serves. Prints
 * progress, then a summary.
 */
import { DECODER_OPS } from '../builder/decoder.js'
import { EMBEDDING_PRECISIONS, WEIGHT_PRECISIONS } from '../builder/precision.js'
import { convertCheckpoint, type ConversionSummary } from '../convert/convert.js'
import { consoleProgress } from '../convert/progress.js'
import { CommandError, UsageError, type Command } from './command.js'
import { parseFlags } from './flags.js'
import { KelixError } from '../errors/kelix-error.js'

const help = (
  usage: string,
) => `Usage: ${usage} --from CHECKPOINT_DIR [--dit DIT_DIR --vae VAE_DIR] --out MODEL_DIR [options]

Converts a Kelix checkpoint in the published layout (config.json with KeyeARConfig,
safetensors shards and model.safetensors.index.json, tokenizer files) into a model
directory for Kelix Serve (docs/model-format.md). The output appears only when complete.
With the Kelix-DiT (SanaConfig) and DC-AE (diffusers AutoencoderDC) checkpoints, given
here or found in CHECKPOINT_DIR/dit and CHECKPOINT_DIR/vae, the model also generates
images; without them it is a chat-only export.

  --from DIR                       the checkpoint directory (required)
  --out DIR                        the model directory to write (required)
  --dit DIR                        the DiT checkpoint (default: CHECKPOINT_DIR/dit if present)
  --vae DIR                        the VAE checkpoint (default: CHECKPOINT_DIR/vae if present)
  --image-grid N                   image positions per side the LLM writes (default 18, Kelix's,
                                   or the largest grid whose span fits the DiT's condition)
  --steps N                        Euler steps of the sampler (default 50)
  --shift X                        timestep shift (default 3.0)
  --guidance X                     default classifier-free guidance scale (default 1.0)
  --name NAME                      served model name (default: the output directory's name)
  --overwrite                      replace MODEL_DIR if it exists and is not empty
  --low-detail-max-positions N     position cap for image_url.detail "low" (default 256)
  --row-marker TEXT                an image row's marker text, {row} and {cols} filled in
                                   (default "{row},{cols}")
  --precision fp32|int8|int4       the LLM's linear layers: float32, or weight-only int8/int4
                                   (MatMulNBits, symmetric, blocks of 32) (default fp32)
  --lm-head-precision fp32|int8|int4
                                   the LM head (default int8 when --precision is int8 or int4,
                                   else fp32)
  --embedding-precision fp32|fp16  the embedding table (default fp32)
  --decoder-ops fused|portable     the LLM graph's operators: ONNX Runtime's fused kernels
                                   (SkipSimplifiedLayerNormalization, RotaryEmbedding), or
                                   standard ONNX only, for other runtimes (default fused)
  -h, --help                       this text`

const OPTIONS = {
  from: { type: 'string' },
  out: { type: 'string' },
  name: { type: 'string' },
  overwrite: { type: 'boolean' },
  'low-detail-max-positions': { type: 'string' },
  'row-marker': { type: 'string' },
  dit: { type: 'string' },
  vae: { type: 'string' },
  'image-grid': { type: 'string' },
  steps: { type: 'string' },
  shift: { type: 'string' },
  guidance: { type: 'string' },
  precision: { type: 'string' },
  'lm-head-precision': { type: 'string' },
  'embedding-precision': { type: 'string' },
  'decoder-ops': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

export const convert: Command = async (argv, usage) => {
  const parsed = parseFlags(argv, OPTIONS)
  if (parsed.help) {
    console.log(help(usage))
    return 0
  }
  const opts = options(parsed)
  try {
    printSummary(opts.out, await convertCheckpoint({ ...opts, progress: consoleProgress() }))
  } catch (err) {
    if (err instanceof KelixError) throw new CommandError(`${err.code}: ${err.message}`)
    throw err
  }
  return 0
}

type ConvertFlags = ReturnType<typeof parseFlags<typeof OPTIONS>>

function options(parsed: ConvertFlags) {
  if (parsed.from === undefined || parsed.out === undefined)
    throw new UsageError('--from and --out are required (see --help)')
  const cap = positiveInteger(parsed, 'low-detail-max-positions')
  const grid = positiveInteger(parsed, 'image-grid')
  const steps = positiveInteger(parsed, 'steps')
  const shift = positiveNumber(parsed, 'shift')
  const guidance = positiveNumber(parsed, 'guidance')
  const linear = oneOf(parsed, 'precision', WEIGHT_PRECISIONS)
  const lmHead = oneOf(parsed, 'lm-head-precision', WEIGHT_PRECISIONS)
  const embedding = oneOf(parsed, 'embedding-precision', EMBEDDING_PRECISIONS)
  const decoderOps = oneOf(parsed, 'decoder-ops', DECODER_OPS)
  const marker = parsed['row-marker']
  if (marker !== undefined && !marker.includes('{row}'))
    throw new UsageError(`--row-marker must contain {row}, got ${JSON.stringify(marker)}`)
  return {
    from: parsed.from,
    out: parsed.out,
    overwrite: parsed.overwrite === true,
    ...(parsed.name === undefined ? {} : { name: parsed.name }),
    ...(cap === undefined ? {} : { lowDetailMaxPositions: cap }),
    ...(marker === undefined ? {} : { rowMarker: marker }),
    ...(parsed.dit === undefined ? {} : { dit: parsed.dit }),
    ...(parsed.vae === undefined ? {} : { vae: parsed.vae }),
    ...(decoderOps === undefined ? {} : { decoderOps }),
    precision: {
      ...(linear === undefined ? {} : { linear }),
      ...(lmHead === undefined ? {} : { lmHead }),
      ...(embedding === undefined ? {} : { embedding }),
    },
    imageGeneration: {
      ...(grid === undefined ? {} : { grid }),
      ...(steps === undefined ? {} : { steps }),
      ...(shift === undefined ? {} : { shift }),
      ...(guidance === undefined ? {} : { guidance }),
    },
  }
}

function positiveInteger(parsed: Record<string, unknown>, flag: string): number | undefined {
  const text = parsed[flag] as string | undefined
  if (text === undefined) return undefined
  const value = Number(text)
  if (!(Number.isInteger(value) && value > 0)) throw new UsageError(`--${flag} must be a positive integer, got ${text}`)
  return value
}

function oneOf<T extends string>(parsed: Record<string, unknown>, flag: string, values: readonly T[]): T | undefined {
  const text = parsed[flag] as string | undefined
  if (text === undefined) return undefined
  if (!(values as readonly string[]).includes(text))
    throw new UsageError(`--${flag} must be ${values.slice(0, -1).join(', ')} or ${values.at(-1)}, got ${text}`)
  return text as T
}

function positiveNumber(parsed: Record<string, unknown>, flag: string): number | undefined {
  const text = parsed[flag] as string | undefined
  if (text === undefined) return undefined
  const value = Number(text)
  if (!(Number.isFinite(value) && value > 0)) throw new UsageError(`--${flag} must be a positive number, got ${text}`)
  return value
}

function printSummary(out: string, s: ConversionSummary): void {
  const gb = (bytes: number) => `${(bytes / 1e9).toFixed(3)} GB`
  console.log(`\nwrote ${out} (${s.config.name}) in ${s.seconds.toFixed(1)} s`)
  const precision = s.config.precision as { linear: string; lm_head: string; embedding: string } | undefined
  if (precision !== undefined)
    console.log(
      `  precision: linear layers ${precision.linear}, LM head ${precision.lm_head}, embedding table ${precision.embedding}`,
    )
  for (const g of s.graphs)
    console.log(
      `  ${g.file.padEnd(22)} ${(g.parameters / 1e6).toFixed(1).padStart(9)} M parameters  ${gb(g.dataBytes)} data  ${(g.graphBytes / 1024).toFixed(0)} KiB graph`,
    )
  if (s.unused.length > 0) {
    console.log('  not used by any graph:')
    for (const u of s.unused)
      console.log(
        `    ${u.family} (${u.tensors} tensor${u.tensors === 1 ? '' : 's'}, ${(u.parameters / 1e6).toFixed(2)} M parameters)`,
      )
  }
  for (const p of s.partlyUsed)
    console.log(
      `  read in part: ${p.family} (${p.tensors} tensor${p.tensors === 1 ? '' : 's'}, rows ${p.rows} of ${p.of} each)`,
    )
  if (s.unindexed.length > 0) console.log(`  in a shard but not in the index (ignored): ${s.unindexed.join(', ')}`)
}
