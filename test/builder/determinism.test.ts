import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { buildTinyModel, hashModelDir } from '../../src/builder/build-model.js'

t.test('two builds from the same seed are byte-identical', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'kelix-build-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  await buildTinyModel(join(root, 'a'))
  await buildTinyModel(join(root, 'b'))
  const a = await hashModelDir(join(root, 'a'))
  const b = await hashModelDir(join(root, 'b'))
  t.same(Object.keys(a), ['block_decoder.onnx', 'config.json', 'decoder.onnx', 'tokenizer.json', 'tokenizer_config.json', 'visual_tokenizer.onnx'])
  t.same(a, b)
})

t.test('another seed changes the weights but not the config or tokenizer', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'kelix-build-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  await buildTinyModel(join(root, 'a'), 1)
  await buildTinyModel(join(root, 'b'), 2)
  const a = await hashModelDir(join(root, 'a'))
  const b = await hashModelDir(join(root, 'b'))
  t.equal(a['config.json'], b['config.json'])
  t.equal(a['tokenizer.json'], b['tokenizer.json'])
  t.not(a['decoder.onnx'], b['decoder.onnx'])
  t.not(a['block_decoder.onnx'], b['block_decoder.onnx'])
  t.not(a['visual_tokenizer.onnx'], b['visual_tokenizer.onnx'])
})
