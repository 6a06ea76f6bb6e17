/**
 * Writes the tiny Kelix model directory: the tiny random checkpoints
 * (tiny-checkpoint.ts: the LLM in Kelix's layout, the DiT in SANA's, the VAE
 * in diffusers' AutoencoderDC's) converted by the checkpoint converter, as a
 * release would be. The directory appears atomically (convert/model-dir.ts),
 * so concurrent builders and readers never see half a model.
 */
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_MODEL_DIR } from './default-model-dir.js'
import { writeConvertedModel } from '../convert/convert.js'
import { BUNDLED_DIRS } from '../convert/image-decoder.js'
import { writeModelDirAtomically } from '../convert/model-dir.js'
import type { BlockDecoderOptions } from './block-decoder.js'
import type { CacheOutputs } from './decoder.js'
import type { Precision } from './precision.js'
import { writeTinyCheckpoint, writeTinyDitCheckpoint, writeTinyVaeCheckpoint } from './tiny-checkpoint.js'
import { TINY_BUILDER_VERSION, TINY_CONFIG, TINY_SEED } from './tiny.js'

export interface TinyModelOptions {
  seed?: number
  /** The decoder's cache outputs; tests and the benchmark build the conventional `present` form too. */
  cacheOutputs?: CacheOutputs
  /** `{ vocabParts: false }` writes the older block decoder (whole-vocabulary logits, same weights). */
  blockDecoder?: BlockDecoderOptions
  /** How the LLM's weights are stored (default fp32: the embedded model); tests build quantized variants. */
  precision?: Partial<Precision>
}

/** Writes the tiny model to `dir`, replacing whatever is there. */
export async function buildTinyModel(dir: string, options: TinyModelOptions = {}): Promise<void> {
  await writeModelDirAtomically(dir, (staging) => writeTinyModel(staging, options), { replace: true })
}

/**
 * Builds the tiny model at `dir` unless the current builder's model is already
 * there (an older build is replaced). Returns true when it built.
 */
export async function ensureTinyModel(dir = DEFAULT_MODEL_DIR): Promise<boolean> {
  if (await builtByCurrentBuilder(dir)) return false
  await writeModelDirAtomically(dir, (staging) => writeTinyModel(staging, {}), {
    replace: existsSync(join(dir, 'config.json')),
  })
  return true
}

function builderTag(seed: number): string {
  return `${TINY_BUILDER_VERSION} seed ${seed}`
}

async function writeTinyModel(dir: string, options: TinyModelOptions): Promise<void> {
  const seed = options.seed ?? TINY_SEED
  const checkpoint = await mkdtemp(join(tmpdir(), 'kelix-tiny-checkpoint-'))
  try {
    // Bundled as a release may bundle them: the converter finds dit/ and vae/ inside the checkpoint.
    await writeTinyCheckpoint(checkpoint, seed)
    await writeTinyDitCheckpoint(join(checkpoint, BUNDLED_DIRS.dit), seed)
    await writeTinyVaeCheckpoint(join(checkpoint, BUNDLED_DIRS.vae), seed)
    const { grid, steps, shift, guidance } = TINY_CONFIG.image_generation
    await writeConvertedModel(checkpoint, dir, {
      name: TINY_CONFIG.name,
      lowDetailMaxPositions: TINY_CONFIG.vision.low_detail_max_positions,
      generation: TINY_CONFIG.generation,
      imageGeneration: { grid, steps, shift, guidance },
      ...(options.cacheOutputs === undefined ? {} : { cacheOutputs: options.cacheOutputs }),
      ...(options.blockDecoder === undefined ? {} : { blockDecoder: options.blockDecoder }),
      ...(options.precision === undefined ? {} : { precision: options.precision }),
      extraConfig: { builder: builderTag(seed) },
    })
  } finally {
    await rm(checkpoint, { recursive: true, force: true })
  }
}

async function builtByCurrentBuilder(dir: string): Promise<boolean> {
  try {
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { builder?: unknown }
    return config.builder === builderTag(TINY_SEED)
  } catch {
    return false
  }
}

/** sha256 of each file in a model directory, by name. */
export async function hashModelDir(dir: string): Promise<Record<string, string>> {
  const names = (await readdir(dir)).sort()
  const hashes: Record<string, string> = {}
  for (const name of names)
    hashes[name] = createHash('sha256')
      .update(await readFile(join(dir, name)))
      .digest('hex')
  return hashes
}
