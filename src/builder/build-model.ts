/**
 * Writes the tiny Kelix model directory. The directory appears atomically
 * (written beside, then renamed), so concurrent builders and readers never see
 * half a model.
 */
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildBlockDecoder, type BlockDecoderOptions } from './block-decoder.js'
import { buildDecoder, type CacheOutputs } from './decoder.js'
import { buildDit } from './dit.js'
import { GraphBuilder } from './graph.js'
import { buildTokenizerFiles } from './text-tokenizer.js'
import { TINY_BUILDER_VERSION, TINY_CONFIG, TINY_LLM_INTERMEDIATE, TINY_LM_HEAD_GAIN, TINY_SEED, TINY_VAE, TINY_VISION } from './tiny.js'
import { buildVaeDecoder } from './vae-decoder.js'
import { buildVisualTokenizer } from './visual-tokenizer.js'
import { WeightSource } from './weights.js'

/** `models/kelix-tiny` at the repository root (from src/ or dist/ alike). */
export const DEFAULT_MODEL_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', 'kelix-tiny')

/** `cacheOutputs` picks the decoder's cache outputs; tests and the benchmark build the conventional `present` form too. */
export function modelFiles(seed = TINY_SEED, cacheOutputs: CacheOutputs = 'delta'): Record<string, Uint8Array> {
  const w = new WeightSource(seed)
  const ctx = (name: string) => ({ g: new GraphBuilder(name), w })
  const { tokenizerJson, tokenizerConfig } = buildTokenizerFiles(TINY_CONFIG)
  const json = (value: object) => new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`)
  return {
    'config.json': json({ ...TINY_CONFIG, builder: `${TINY_BUILDER_VERSION} seed ${seed}` }),
    'tokenizer.json': json(tokenizerJson),
    'tokenizer_config.json': json(tokenizerConfig),
    'visual_tokenizer.onnx': buildVisualTokenizer(ctx('kelix_visual_tokenizer'), TINY_CONFIG, TINY_VISION),
    'decoder.onnx': buildDecoder(ctx('kelix_decoder'), TINY_CONFIG, TINY_LLM_INTERMEDIATE, cacheOutputs),
    'block_decoder.onnx': tinyBlockDecoder(seed),
    'dit.onnx': buildDit(ctx('kelix_dit'), TINY_CONFIG),
    'vae_decoder.onnx': buildVaeDecoder(ctx('kelix_vae_decoder'), TINY_CONFIG, TINY_VAE),
  }
}

/** The tiny model's block_decoder.onnx; `{ vocabParts: false }` gives the older form (whole-vocabulary logits, same weights). */
export function tinyBlockDecoder(seed = TINY_SEED, opts: BlockDecoderOptions = {}): Uint8Array {
  return buildBlockDecoder({ g: new GraphBuilder('kelix_block_decoder'), w: new WeightSource(seed) }, TINY_CONFIG, TINY_LM_HEAD_GAIN, opts)
}

/** Writes the tiny model to `dir`, replacing whatever is there. */
export async function buildTinyModel(dir: string, seed = TINY_SEED, cacheOutputs: CacheOutputs = 'delta'): Promise<void> {
  await writeModelDir(dir, modelFiles(seed, cacheOutputs), { replace: true })
}

/**
 * Builds the tiny model at `dir` unless the current builder's model is already
 * there (an older build is replaced). Returns true when it built.
 */
export async function ensureTinyModel(dir = DEFAULT_MODEL_DIR): Promise<boolean> {
  if (await builtByCurrentBuilder(dir)) return false
  await writeModelDir(dir, modelFiles(), { replace: existsSync(join(dir, 'config.json')) })
  return true
}

async function builtByCurrentBuilder(dir: string): Promise<boolean> {
  try {
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { builder?: unknown }
    return config.builder === `${TINY_BUILDER_VERSION} seed ${TINY_SEED}`
  } catch {
    return false
  }
}

async function writeModelDir(dir: string, files: Record<string, Uint8Array>, opts: { replace: boolean }): Promise<void> {
  await mkdir(dirname(dir), { recursive: true })
  const staging = `${dir}.staging-${process.pid}-${Date.now()}`
  await mkdir(staging)
  try {
    for (const [name, bytes] of Object.entries(files)) await writeFile(join(staging, name), bytes)
    if (opts.replace) await rm(dir, { recursive: true, force: true })
    // Without `replace`, another process may have finished first: its identical model stays.
    if (opts.replace || !existsSync(join(dir, 'config.json'))) await rename(staging, dir).catch((err: NodeJS.ErrnoException) => {
      if (opts.replace || err.code !== 'ENOTEMPTY') throw err
    })
  } finally {
    await rm(staging, { recursive: true, force: true })
  }
}

/** sha256 of each file in a model directory, by name. */
export async function hashModelDir(dir: string): Promise<Record<string, string>> {
  const names = (await readdir(dir)).sort()
  const hashes: Record<string, string> = {}
  for (const name of names) hashes[name] = createHash('sha256').update(await readFile(join(dir, name))).digest('hex')
  return hashes
}
