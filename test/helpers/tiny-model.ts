/** The tiny model every test shares: built once at models/kelix-tiny, reused after. */
import { mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { ensureTinyModel, DEFAULT_MODEL_DIR, tinyBlockDecoder } from '../../src/builder/build-model.js'

export async function tinyModelDir(): Promise<string> {
  await ensureTinyModel(DEFAULT_MODEL_DIR)
  return DEFAULT_MODEL_DIR
}

/**
 * A copy of the tiny model, removed when `t` ends: files named in `changes`
 * get that content (or are left out for null), every other file is linked.
 */
export async function tinyModelVariant(t: Test, changes: Record<string, string | Uint8Array | null>): Promise<string> {
  const source = await tinyModelDir()
  const dir = await mkdtemp(join(tmpdir(), 'kelix-variant-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  for (const name of await readdir(source)) {
    const change = changes[name]
    if (change === null) continue
    if (change === undefined) await symlink(join(source, name), join(dir, name))
    else await writeFile(join(dir, name), change)
  }
  return dir
}

/** The tiny model whose block_decoder.onnx has the older form: no `vocab_part`, logits over the whole vocabulary, same weights. */
export function olderBlockDecoderModelDir(t: Test): Promise<string> {
  return tinyModelVariant(t, { 'block_decoder.onnx': tinyBlockDecoder(undefined, { vocabParts: false }) })
}

/** The tiny model as a chat-only export: no dit.onnx or vae_decoder.onnx, and no `image_generation` in config.json. */
export async function chatOnlyModelDir(t: Test): Promise<string> {
  const config = JSON.parse(await readFile(join(await tinyModelDir(), 'config.json'), 'utf8')) as Record<string, unknown>
  delete config.image_generation
  return tinyModelVariant(t, { 'config.json': JSON.stringify(config), 'dit.onnx': null, 'vae_decoder.onnx': null })
}
