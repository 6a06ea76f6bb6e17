import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { buildTinyModel, hashModelDir } from '../../src/builder/build-model.js'
import { TINY_BUILDER_VERSION } from '../../src/builder/tiny.js'

t.test('two builds from the same seed are byte-identical', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'kelix-build-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  await buildTinyModel(join(root, 'a'))
  await buildTinyModel(join(root, 'b'))
  const a = await hashModelDir(join(root, 'a'))
  const b = await hashModelDir(join(root, 'b'))
  t.same(Object.keys(a), [
    'block_decoder.onnx',
    'block_decoder.onnx.data',
    'config.json',
    'decoder.onnx',
    'decoder.onnx.data',
    'dit.onnx',
    'dit.onnx.data',
    'embed_tokens.data',
    'tokenizer.json',
    'tokenizer_config.json',
    'vae_decoder.onnx',
    'vae_decoder.onnx.data',
    'visual_tokenizer.onnx',
    'visual_tokenizer.onnx.data',
  ])
  t.same(a, b)
})

t.test('another seed changes the weights but not the sizes or the tokenizer', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'kelix-build-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  await buildTinyModel(join(root, 'a'), { seed: 1 })
  await buildTinyModel(join(root, 'b'), { seed: 2 })
  const a = await hashModelDir(join(root, 'a'))
  const b = await hashModelDir(join(root, 'b'))
  const config = async (dir: string) => {
    const { builder, ...rest } = JSON.parse(await readFile(join(root, dir, 'config.json'), 'utf8')) as Record<
      string,
      unknown
    >
    return { builder, rest }
  }
  const [configA, configB] = [await config('a'), await config('b')]
  t.same(configA.rest, configB.rest)
  t.same([configA.builder, configB.builder], [`${TINY_BUILDER_VERSION} seed 1`, `${TINY_BUILDER_VERSION} seed 2`])
  t.equal(a['tokenizer.json'], b['tokenizer.json'])
  t.not(a['decoder.onnx.data'], b['decoder.onnx.data'])
  t.not(a['block_decoder.onnx.data'], b['block_decoder.onnx.data'])
  t.not(a['visual_tokenizer.onnx.data'], b['visual_tokenizer.onnx.data'])
  t.not(a['dit.onnx.data'], b['dit.onnx.data'])
  t.not(a['vae_decoder.onnx.data'], b['vae_decoder.onnx.data'])
})
