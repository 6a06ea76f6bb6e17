/** The tiny model every test shares: built once at models/kelix-tiny, reused after. */
import { ensureTinyModel, DEFAULT_MODEL_DIR } from '../../src/builder/build-model.js'

export async function tinyModelDir(): Promise<string> {
  await ensureTinyModel(DEFAULT_MODEL_DIR)
  return DEFAULT_MODEL_DIR
}
