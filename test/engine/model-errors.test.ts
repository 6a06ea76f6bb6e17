/** A broken model directory fails to load with an error naming the file and the problem. */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { loadModel } from '../../src/engine/model.js'
import { tinyModelDir, tinyModelVariant } from '../helpers/tiny-model.js'
import { KelixError } from '../../src/errors/kelix-error.js'

type Config = Record<string, Record<string, unknown>>

async function editedConfig(edit: (c: Config) => void): Promise<string> {
  const config = JSON.parse(await readFile(join(await tinyModelDir(), 'config.json'), 'utf8')) as Config
  edit(config)
  return JSON.stringify(config)
}

async function loadError(dir: string): Promise<KelixError> {
  try {
    const model = await loadModel(dir)
    await model.dispose()
  } catch (err) {
    if (err instanceof KelixError) return err
    throw err
  }
  throw new Error('the model loaded')
}

t.test('a missing directory is MODEL_DIR_MISSING', async (t) => {
  const err = await loadError('/nonexistent/kelix')
  t.equal(err.code, 'MODEL_DIR_MISSING')
  t.match(err.message, '/nonexistent/kelix')
})

t.test('a missing graph is MODEL_FILE_MISSING naming the file', async (t) => {
  const err = await loadError(await tinyModelVariant(t, { 'block_decoder.onnx': null }))
  t.equal(err.code, 'MODEL_FILE_MISSING')
  t.equal(err.fields.file, 'block_decoder.onnx')
  t.match(err.message, /^block_decoder\.onnx: required by the model format/)
})

t.test('with image_generation in config.json, a missing dit.onnx is MODEL_FILE_MISSING naming it', async (t) => {
  const err = await loadError(await tinyModelVariant(t, { 'dit.onnx': null }))
  t.equal(err.code, 'MODEL_FILE_MISSING')
  t.equal(err.fields.file, 'dit.onnx')
  t.match(err.message, /^dit\.onnx: required by config\.json image_generation but not found in /)
})

t.test('an image_generation section missing a field names it', async (t) => {
  const config = await editedConfig((c) => {
    delete c.image_generation?.steps
  })
  const err = await loadError(await tinyModelVariant(t, { 'config.json': config }))
  t.equal(err.code, 'MODEL_CONFIG_INVALID')
  t.equal(err.message, "config.json: /image_generation must have required property 'steps'")
})

t.test('a guidance out of range and a condition too short for the grid are named', async (t) => {
  const negative = await editedConfig((c) => {
    Object.assign(c.image_generation as object, { guidance: -1 })
  })
  const err = await loadError(await tinyModelVariant(t, { 'config.json': negative }))
  t.equal(err.code, 'MODEL_CONFIG_INVALID')
  t.equal(err.message, 'config.json: /image_generation/guidance must be >= 0')
  const short = await editedConfig((c) => {
    Object.assign(c.image_generation as object, { condition_length: 50 })
  })
  const shortErr = await loadError(await tinyModelVariant(t, { 'config.json': short }))
  t.equal(
    shortErr.message,
    'config.json: image_generation.condition_length (50) is shorter than the span of a 6×6 grid (at least 2 + grid·(grid + 3) = 56)',
  )
})

t.test('a latent size that disagrees with dit.onnx names the input shape', async (t) => {
  const config = await editedConfig((c) => {
    ;(c.image_generation as Record<string, number>).latent_size = 16
  })
  const err = await loadError(await tinyModelVariant(t, { 'config.json': config }))
  t.equal(err.code, 'MODEL_GRAPH_MISMATCH')
  t.equal(err.fields.file, 'dit.onnx')
  t.match(
    err.message,
    /^dit\.onnx: input latents has size 8 at axis 2, expected 16 \(\[batch, 8, 8, 8\] vs \[batch, 8, 16, 16\]\)/,
  )
})

t.test('an image size that disagrees with vae_decoder.onnx names the output shape', async (t) => {
  const config = await editedConfig((c) => {
    ;(c.image_generation as Record<string, number>).image_size = 128
  })
  const err = await loadError(await tinyModelVariant(t, { 'config.json': config }))
  t.equal(err.code, 'MODEL_GRAPH_MISMATCH')
  t.equal(
    err.message,
    'vae_decoder.onnx: output image has size 64 at axis 2, expected 128 ([batch, 3, 64, 64] vs [batch, 3, 128, 128]); output image has size 64 at axis 3, expected 128 ([batch, 3, 64, 64] vs [batch, 3, 128, 128])',
  )
})

t.test('a config that breaks the schema names the field', async (t) => {
  const config = await editedConfig((c) => {
    delete c.llm
  })
  const err = await loadError(await tinyModelVariant(t, { 'config.json': config }))
  t.equal(err.code, 'MODEL_CONFIG_INVALID')
  t.equal(err.message, "config.json: / must have required property 'llm'")
})

t.test('an inconsistent vocabulary size is named with the expected value', async (t) => {
  const config = await editedConfig((c) => {
    ;(c.vocab as Record<string, number>).vocab_size = 5000
  })
  const err = await loadError(await tinyModelVariant(t, { 'config.json': config }))
  t.equal(err.code, 'MODEL_CONFIG_INVALID')
  t.equal(
    err.message,
    'config.json: vocab.vocab_size is 5000, expected visual_id_offset + num_codebooks * codebook_size = 4608',
  )
})

t.test('a config whose hidden size disagrees with decoder.onnx names the output and the sizes', async (t) => {
  const config = await editedConfig((c) => {
    ;(c.llm as Record<string, number>).hidden_size = 128
  })
  const err = await loadError(await tinyModelVariant(t, { 'config.json': config }))
  t.equal(err.code, 'MODEL_GRAPH_MISMATCH')
  t.equal(err.fields.file, 'decoder.onnx')
  t.equal(
    err.message,
    'decoder.onnx: output hidden_states has size 256 at axis 2, expected 128 ([batch, seq, 256] vs [batch, seq, 128])',
  )
})

t.test('a config with more layers than decoder.onnx names the missing cache inputs', async (t) => {
  const config = await editedConfig((c) => {
    ;(c.llm as Record<string, number>).num_layers = 5
  })
  const err = await loadError(await tinyModelVariant(t, { 'config.json': config }))
  t.equal(err.code, 'MODEL_GRAPH_MISMATCH')
  t.equal(
    err.message,
    'decoder.onnx: missing input past_key_values.4.key; missing input past_key_values.4.value; declares no complete set of cache outputs: expected present_delta.{i}.key/value (new entries only) or present.{i}.key/value (whole cache) for every layer',
  )
})

t.test('a patch size that disagrees with visual_tokenizer.onnx names the input shape', async (t) => {
  const config = await editedConfig((c) => {
    ;(c.vision as Record<string, number>).patch_size = 16
  })
  const err = await loadError(await tinyModelVariant(t, { 'config.json': config }))
  t.equal(err.code, 'MODEL_GRAPH_MISMATCH')
  t.equal(
    err.message,
    'visual_tokenizer.onnx: input pixel_patches has size 588 at axis 1, expected 768 ([patches, 588] vs [patches, 768])',
  )
})

t.test('a corrupt graph is MODEL_GRAPH_INVALID naming the file', async (t) => {
  const err = await loadError(await tinyModelVariant(t, { 'decoder.onnx': new Uint8Array([1, 2, 3, 4, 5]) }))
  t.equal(err.code, 'MODEL_GRAPH_INVALID')
  t.match(err.message, /^decoder\.onnx: ONNX Runtime could not load it/)
})

t.test('a special token id the tokenizer does not define is MODEL_TOKENIZER_MISMATCH', async (t) => {
  const config = await editedConfig((c) => {
    ;(c.special_tokens as Record<string, number>).eob = 510
  })
  const err = await loadError(await tinyModelVariant(t, { 'config.json': config }))
  t.equal(err.code, 'MODEL_TOKENIZER_MISMATCH')
  t.equal(err.message, 'tokenizer.json: config.json gives special_tokens.eob id 510, but no added token has that id')
})
