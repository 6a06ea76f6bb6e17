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
 * A copy of the tiny model (other files linked) whose block_decoder.onnx has
 * the older form: no `vocab_part`, logits over the whole vocabulary, same weights.
 */
export async function olderBlockDecoderModelDir(t: Test): Promise<string> {
  const source = await tinyModelDir()
  const dir = await mkdtemp(join(tmpdir(), 'kelix-older-block-decoder-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  for (const name of await readdir(source)) {
    if (name === 'block_decoder.onnx') await writeFile(join(dir, name), tinyBlockDecoder(undefined, { vocabParts: false }))
    else await symlink(join(source, name), join(dir, name))
  }
  return dir
}

/**
 * A copy of the tiny model (other files linked) as a chat-only export: no
 * dit.onnx or vae_decoder.onnx, and no `image_generation` in config.json.
 */
export async function chatOnlyModelDir(t: Test): Promise<string> {
  const source = await tinyModelDir()
  const dir = await mkdtemp(join(tmpdir(), 'kelix-chat-only-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  for (const name of await readdir(source)) {
    if (name === 'dit.onnx' || name === 'vae_decoder.onnx') continue
    if (name !== 'config.json') {
      await symlink(join(source, name), join(dir, name))
      continue
    }
    const config = JSON.parse(await readFile(join(source, name), 'utf8')) as Record<string, unknown>
    delete config.image_generation
    await writeFile(join(dir, name), JSON.stringify(config))
  }
  return dir
}
