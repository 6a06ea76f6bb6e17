/** The tiny model every test shares: built once at models/kelix-tiny, reused after. */
import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { buildTinyModel, ensureTinyModel, type TinyModelOptions } from '../../src/builder/build-model.js'
import { DEFAULT_MODEL_DIR } from '../../src/builder/default-model-dir.js'

export async function tinyModelDir(): Promise<string> {
  await ensureTinyModel(DEFAULT_MODEL_DIR)
  return DEFAULT_MODEL_DIR
}

/**
 * A copy of the tiny model, removed when `t` ends: files named in `changes`
 * get that content (or are left out for null), every other file is copied
 * (ONNX Runtime refuses external data reached through a symbolic or hard link).
 */
export async function tinyModelVariant(t: Test, changes: Record<string, string | Uint8Array | null>): Promise<string> {
  const source = await tinyModelDir()
  const dir = await mkdtemp(join(tmpdir(), 'kelix-variant-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  for (const name of await readdir(source)) {
    const change = changes[name]
    if (change === null) continue
    if (change === undefined) await copyFile(join(source, name), join(dir, name))
    else await writeFile(join(dir, name), change)
  }
  return dir
}

/** The tiny model built with other graph options (same weights), in a directory removed when `t` ends. */
export async function tinyModelWith(t: Test, options: TinyModelOptions): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'kelix-tiny-with-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const dir = join(root, 'model')
  await buildTinyModel(dir, options)
  return dir
}

/** The tiny model whose block_decoder.onnx has the older form: no `vocab_part`, logits over the whole vocabulary, same weights. */
export function olderBlockDecoderModelDir(t: Test): Promise<string> {
  return tinyModelWith(t, { blockDecoder: { vocabParts: false } })
}

/** The tiny model as a chat-only export: no dit.onnx or vae_decoder.onnx, and no `image_generation` in config.json. */
export async function chatOnlyModelDir(t: Test): Promise<string> {
  const config = JSON.parse(await readFile(join(await tinyModelDir(), 'config.json'), 'utf8')) as Record<
    string,
    unknown
  >
  delete config.image_generation
  return tinyModelVariant(t, { 'config.json': JSON.stringify(config), 'dit.onnx': null, 'vae_decoder.onnx': null })
}
