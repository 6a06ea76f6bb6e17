/** The tiny model every test shares: built once at models/kelix-tiny, reused after. */
import { mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises'
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
