/** A checkpoint directory opens from its index or its shards, reads row ranges, and fails naming the file and key at fault. */
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { Checkpoint, INDEX_FILE, writeCheckpoint, type TensorToWrite } from '../../src/convert/checkpoint.js'
import { readSafetensorsHeader, writeSafetensors } from '../../src/convert/safetensors.js'
import { KelixError } from '../../src/errors/kelix-error.js'

const REFERENCE = '/work/shared/kelix-reference/kelix/checkpoint'
const REFERENCE_VAE = '/work/shared/kelix-reference/vae/checkpoint'
const SHARD_0 = 'model-00000-of-00003.safetensors'
const EMBED = 'model.model.tok_embeddings.embed_tokens.weight'

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kelix-checkpoint-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

async function opened(t: Test, dir: string): Promise<Checkpoint> {
  const checkpoint = await Checkpoint.open(dir)
  t.teardown(() => checkpoint.close())
  return checkpoint
}

async function convertError(run: () => Promise<unknown>): Promise<KelixError> {
  try {
    await run()
  } catch (err) {
    if (err instanceof KelixError) return err
    throw err
  }
  throw new Error('no error was thrown')
}

/** A copy of the reference checkpoint's weight files (index and shards), to break. */
async function referenceCopy(t: Test): Promise<string> {
  const dir = await tempDir(t)
  for (const name of await readdir(REFERENCE)) {
    if (name.endsWith('.safetensors') || name === INDEX_FILE) await copyFile(join(REFERENCE, name), join(dir, name))
  }
  return dir
}

async function editIndex(dir: string, edit: (weightMap: Record<string, string>) => void): Promise<void> {
  const index = JSON.parse(await readFile(join(dir, INDEX_FILE), 'utf8')) as { weight_map: Record<string, string> }
  edit(index.weight_map)
  await writeFile(join(dir, INDEX_FILE), JSON.stringify(index))
}

const iota = (n: number, scale = 1): Float32Array => Float32Array.from({ length: n }, (_, i) => i * scale)

t.test('the reference checkpoint opens through its index with all 158 tensors', async (t) => {
  const checkpoint = await opened(t, REFERENCE)
  t.equal(checkpoint.keys().length, 158)
  t.same(checkpoint.unindexedKeys(), [])
  t.ok(checkpoint.has('lm_head.weight'))
  const embed = checkpoint.tensor(EMBED)
  t.same(embed.shape, [1024, 64])
  t.equal(embed.dtype, 'BF16')
  t.equal(embed.file, join(REFERENCE, SHARD_0))
  t.equal(checkpoint.parameterCount(EMBED), 65536)
  t.equal(checkpoint.expectShape(EMBED, [1024, 64]), embed)
})

t.test('the reference final norm reads as 64 finite values, the first as numpy decodes them', async (t) => {
  const checkpoint = await opened(t, REFERENCE)
  const scale = await checkpoint.read('model.model.norm.scale')
  t.equal(scale.length, 64)
  t.ok(scale.every(Number.isFinite))
  t.same([...scale.subarray(0, 6)], [0.8359375, 0.9296875, 1.0703125, 0.8984375, 1.03125, 0.91015625])
})

t.test('readRows of the reference embedding reads the rows asked for, equal to those of a whole read', async (t) => {
  const checkpoint = await opened(t, REFERENCE)
  const rows = await checkpoint.readRows(EMBED, 5, 3)
  t.equal(rows.length, 3 * 64)
  t.same([...rows.subarray(0, 2)], [1.28125, -1.1875])
  t.same([...rows], [...(await checkpoint.read(EMBED)).subarray(5 * 64, 8 * 64)])
})

t.test('rewriting the reference tensors reproduces its shards and index byte for byte', async (t) => {
  const checkpoint = await opened(t, REFERENCE)
  const tensors = new Map<string, TensorToWrite>()
  for (const key of checkpoint.keys())
    tensors.set(key, { shape: checkpoint.tensor(key).shape, data: await checkpoint.read(key) })
  const out = join(await tempDir(t), 'rewritten')
  await writeCheckpoint(out, tensors, {
    dtype: 'BF16',
    shardBytes: 512 * 1024,
    extraFiles: { 'config.json': '{"__class__": "KeyeARConfig"}' },
  })
  const expected = [INDEX_FILE, SHARD_0, 'model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors']
  t.same((await readdir(out)).sort(), ['config.json', ...expected].sort())
  for (const name of expected)
    t.ok((await readFile(join(out, name))).equals(await readFile(join(REFERENCE, name))), `${name} is identical`)
  t.equal(await readFile(join(out, 'config.json'), 'utf8'), '{"__class__": "KeyeARConfig"}')
})

t.test('the reference VAE, a single f32 file without an index, opens from its safetensors file', async (t) => {
  const checkpoint = await opened(t, REFERENCE_VAE)
  t.equal(checkpoint.keys().length, 102)
  const bias = checkpoint.expectShape('decoder.conv_in.bias', [32])
  t.equal(bias.dtype, 'F32')
  t.equal((await checkpoint.read('decoder.conv_in.bias')).length, 32)
})

t.test('writeCheckpoint closes a shard once it reaches shardBytes and counts shards from zero', async (t) => {
  const dir = join(await tempDir(t), 'new', 'nested')
  const tensors = new Map<string, TensorToWrite>([
    ['e', { shape: [1], data: iota(1) }],
    ['b', { shape: [4], data: iota(4) }],
    ['a', { shape: [2, 2], data: iota(4) }],
    ['d', { shape: [2, 4], data: iota(8) }],
    ['c', { shape: [2], data: iota(2) }],
  ])
  await writeCheckpoint(dir, tensors, {
    dtype: 'F32',
    shardBytes: 32,
    extraFiles: { 'tokenizer.json': Uint8Array.of(123, 125) },
  })
  t.same((await readdir(dir)).sort(), [
    'model-00000-of-00003.safetensors',
    'model-00001-of-00003.safetensors',
    'model-00002-of-00003.safetensors',
    INDEX_FILE,
    'tokenizer.json',
  ])
  // a (16 bytes) + b (16) reaches 32 exactly: closed; c (8) + d (32) passes it: closed; e is left alone.
  t.equal(
    await readFile(join(dir, INDEX_FILE), 'utf8'),
    '{\n  "metadata": {\n    "total_size": 76\n  },\n  "weight_map": {\n' +
      '    "a": "model-00000-of-00003.safetensors",\n    "b": "model-00000-of-00003.safetensors",\n' +
      '    "c": "model-00001-of-00003.safetensors",\n    "d": "model-00001-of-00003.safetensors",\n' +
      '    "e": "model-00002-of-00003.safetensors"\n  }\n}',
  )
  t.equal(await readFile(join(dir, 'tokenizer.json'), 'utf8'), '{}')
  const checkpoint = await opened(t, dir)
  t.same(checkpoint.keys(), ['a', 'b', 'c', 'd', 'e'])
  t.same([...(await checkpoint.read('d'))], [...iota(8)])
})

t.test('readRows reads a middle range of a 2-D tensor, and the whole of 1-D and 0-D tensors', async (t) => {
  const dir = await tempDir(t)
  await writeCheckpoint(
    dir,
    new Map<string, TensorToWrite>([
      ['matrix', { shape: [5, 3], data: iota(15, 0.5) }],
      ['vector', { shape: [4], data: iota(4, -1) }],
      ['scalar', { shape: [], data: Float32Array.of(2.5) }],
    ]),
    { dtype: 'BF16', shardBytes: 1 << 20 },
  )
  const checkpoint = await opened(t, dir)
  t.same([...(await checkpoint.readRows('matrix', 1, 3))], [1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5])
  t.same([...(await checkpoint.readRows('matrix', 4, 0))], [])
  t.same([...(await checkpoint.readRows('vector', 1, 2))], [-1, -2])
  t.same([...(await checkpoint.read('scalar'))], [2.5])
  t.equal(checkpoint.parameterCount('scalar'), 1)
})

t.test('rows past the end of a tensor are CHECKPOINT_SHAPE_MISMATCH naming the key', async (t) => {
  const checkpoint = await opened(t, REFERENCE)
  const err = await convertError(() => checkpoint.readRows(EMBED, 1000, 25))
  t.equal(err.code, 'CHECKPOINT_SHAPE_MISMATCH')
  t.equal(err.fields.file, SHARD_0)
  t.match(err.message, EMBED)
})

t.test('a shard that shrinks after opening is CHECKPOINT_SHARD_INVALID naming it on the read', async (t) => {
  const dir = await referenceCopy(t)
  const checkpoint = await opened(t, dir)
  const embed = checkpoint.tensor(EMBED)
  await truncate(join(dir, SHARD_0), embed.dataOffset + 100)
  const err = await convertError(() => checkpoint.readRows(EMBED, 0, 2))
  t.equal(err.code, 'CHECKPOINT_SHARD_INVALID')
  t.equal(err.fields.file, SHARD_0)
})

t.test('a truncated shard is CHECKPOINT_SHARD_INVALID naming the shard and the tensor cut off', async (t) => {
  const dir = await referenceCopy(t)
  const shard = 'model-00002-of-00003.safetensors'
  const { tensors } = await readSafetensorsHeader(join(dir, shard))
  const last = [...tensors.values()].reduce((a, b) => (b.dataOffset > a.dataOffset ? b : a))
  await truncate(join(dir, shard), last.dataOffset + 2)
  const err = await convertError(() => Checkpoint.open(dir))
  t.equal(err.code, 'CHECKPOINT_SHARD_INVALID')
  t.equal(err.fields.file, shard)
  t.match(
    err.message,
    `ends at byte ${last.dataOffset + 2} but the tensor ${last.key} needs bytes up to ${last.dataOffset + last.byteLength}`,
  )
})

t.test('an index naming a missing shard is CHECKPOINT_FILE_MISSING naming the shard', async (t) => {
  const dir = await referenceCopy(t)
  await rm(join(dir, 'model-00001-of-00003.safetensors'))
  const err = await convertError(() => Checkpoint.open(dir))
  t.equal(err.code, 'CHECKPOINT_FILE_MISSING')
  t.equal(err.fields.file, 'model-00001-of-00003.safetensors')
})

t.test('an index key absent from its shard is CHECKPOINT_INDEX_INVALID naming the key and shard', async (t) => {
  const dir = await referenceCopy(t)
  await editIndex(dir, (weightMap) => {
    weightMap['model.model.extra.weight'] = SHARD_0
  })
  const err = await convertError(() => Checkpoint.open(dir))
  t.equal(err.code, 'CHECKPOINT_INDEX_INVALID')
  t.equal(err.fields.file, INDEX_FILE)
  t.match(err.message, 'model.model.extra.weight')
  t.match(err.message, SHARD_0)
})

t.test('an index that is not JSON, or has no weight_map object, is CHECKPOINT_INDEX_INVALID', async (t) => {
  const dir = await referenceCopy(t)
  await writeFile(join(dir, INDEX_FILE), '{"weight_map": {')
  const garbage = await convertError(() => Checkpoint.open(dir))
  t.equal(garbage.code, 'CHECKPOINT_INDEX_INVALID')
  t.equal(garbage.fields.file, INDEX_FILE)
  await writeFile(join(dir, INDEX_FILE), '{"metadata": {}, "weight_map": ["a"]}')
  t.equal((await convertError(() => Checkpoint.open(dir))).code, 'CHECKPOINT_INDEX_INVALID')
  await writeFile(join(dir, INDEX_FILE), '{"weight_map": {"lm_head.weight": "../model-00000-of-00003.safetensors"}}')
  const escape = await convertError(() => Checkpoint.open(dir))
  t.equal(escape.code, 'CHECKPOINT_INDEX_INVALID')
  t.match(escape.message, 'lm_head.weight')
})

t.test('keys in a shard but not in the index are left out and listed by unindexedKeys', async (t) => {
  const dir = await referenceCopy(t)
  await editIndex(dir, (weightMap) => {
    delete weightMap['lm_head.weight']
  })
  const checkpoint = await opened(t, dir)
  t.equal(checkpoint.keys().length, 157)
  t.notOk(checkpoint.has('lm_head.weight'))
  t.same(checkpoint.unindexedKeys(), ['lm_head.weight'])
})

t.test(
  'without an index, every safetensors file is read and a key in two of them is CHECKPOINT_INDEX_INVALID',
  async (t) => {
    const dir = await tempDir(t)
    await writeSafetensors(join(dir, 'weights-a.safetensors'), [{ key: 'x', shape: [2], data: iota(2) }], 'F32')
    await writeSafetensors(join(dir, 'weights-b.safetensors'), [{ key: 'y', shape: [1], data: iota(1) }], 'F32')
    await mkdir(join(dir, 'nested.safetensors'))
    const checkpoint = await opened(t, dir)
    t.same(checkpoint.keys(), ['x', 'y'])
    await writeSafetensors(join(dir, 'weights-c.safetensors'), [{ key: 'x', shape: [2], data: iota(2) }], 'F32')
    const err = await convertError(() => Checkpoint.open(dir))
    t.equal(err.code, 'CHECKPOINT_INDEX_INVALID')
    t.equal(err.fields.file, 'weights-c.safetensors')
    t.match(err.message, /tensor x .*weights-a\.safetensors/)
  },
)

t.test('a missing directory is CHECKPOINT_DIR_MISSING and an empty one CHECKPOINT_FILE_MISSING', async (t) => {
  const dir = await tempDir(t)
  const missing = await convertError(() => Checkpoint.open(join(dir, 'absent')))
  t.equal(missing.code, 'CHECKPOINT_DIR_MISSING')
  t.match(missing.message, join(dir, 'absent'))
  const empty = await convertError(() => Checkpoint.open(dir))
  t.equal(empty.code, 'CHECKPOINT_FILE_MISSING')
  t.match(empty.message, dir)
})

t.test('an absent key is CHECKPOINT_KEY_MISSING naming it', async (t) => {
  const checkpoint = await opened(t, REFERENCE)
  const err = await convertError(async () => checkpoint.tensor('model.model.layers.7.mlp.w1.weight'))
  t.equal(err.code, 'CHECKPOINT_KEY_MISSING')
  t.match(err.message, 'model.model.layers.7.mlp.w1.weight')
  t.equal((await convertError(() => checkpoint.read('nothing.here'))).code, 'CHECKPOINT_KEY_MISSING')
})

t.test('expectShape names the key, the shard, both shapes and the reason on a mismatch', async (t) => {
  const checkpoint = await opened(t, REFERENCE)
  const err = await convertError(async () => checkpoint.expectShape(EMBED, [1024, 32], 'qwen_config.embed_dim = 32'))
  t.equal(err.code, 'CHECKPOINT_SHAPE_MISMATCH')
  t.equal(err.fields.file, SHARD_0)
  t.match(err.message, SHARD_0)
  t.match(err.message, EMBED)
  t.match(err.message, '[1024, 64]')
  t.match(err.message, '[1024, 32]')
  t.match(err.message, 'qwen_config.embed_dim = 32')
  t.equal(
    (await convertError(async () => checkpoint.expectShape(EMBED, [1024, 64, 1]))).code,
    'CHECKPOINT_SHAPE_MISMATCH',
  )
})

t.test('close is idempotent and a read after it fails', async (t) => {
  const checkpoint = await Checkpoint.open(REFERENCE)
  await checkpoint.read('model.model.norm.scale')
  await checkpoint.close()
  await checkpoint.close()
  await t.rejects(checkpoint.read('model.model.norm.scale'), /closed/)
})

t.test('writeCheckpoint refuses bad options and data that does not fill its shape, before writing', async (t) => {
  const dir = join(await tempDir(t), 'out')
  const one = new Map<string, TensorToWrite>([['w', { shape: [2], data: iota(2) }]])
  t.equal(
    (await convertError(() => writeCheckpoint(dir, one, { dtype: 'BF16', shardBytes: 0 }))).code,
    'CONVERT_OPTION_INVALID',
  )
  t.equal(
    (await convertError(() => writeCheckpoint(dir, new Map(), { dtype: 'BF16', shardBytes: 8 }))).code,
    'CONVERT_OPTION_INVALID',
  )
  const escape = await convertError(() =>
    writeCheckpoint(dir, one, { dtype: 'BF16', shardBytes: 8, extraFiles: { '../config.json': '{}' } }),
  )
  t.equal(escape.code, 'CONVERT_OPTION_INVALID')
  const short = new Map<string, TensorToWrite>([
    ['a', { shape: [2], data: iota(2) }],
    ['w', { shape: [3, 2], data: iota(5) }],
  ])
  const err = await convertError(() => writeCheckpoint(dir, short, { dtype: 'F32', shardBytes: 4 }))
  t.equal(err.code, 'CHECKPOINT_SHAPE_MISMATCH')
  t.match(err.message, /tensor w /)
  await t.rejects(readdir(dir), { code: 'ENOENT' }, 'nothing was written')
})
