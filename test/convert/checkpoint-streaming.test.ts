/** A checkpoint written one tensor at a time is the same, byte for byte, as one written from tensors held in memory. */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import {
  INDEX_FILE,
  writeCheckpoint,
  writeCheckpointStreaming,
  type TensorToWrite,
} from '../../src/convert/checkpoint.js'

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kelix-streaming-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Deterministic values that are not all bf16-exact, so rounding is exercised too. */
function values(n: number, seed: number): Float32Array {
  let x = seed >>> 0 || 1
  return Float32Array.from({ length: n }, () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return ((x >>> 0) / 0x1_0000_0000 - 0.5) * 3
  })
}

/** Tensors of a small checkpoint: layered keys (so sorting matters), a 0-D and an empty tensor among them. */
function smallTensors(): Map<string, TensorToWrite> {
  const shapes: Array<[string, number[]]> = [
    ['model.model.tok_embeddings.embed_tokens.weight', [300, 64]],
    ['model.model.layers.10.attn.q_proj.weight', [64, 64]],
    ['model.model.layers.2.attn.q_proj.weight', [64, 64]],
    ['model.model.layers.2.mlp_norm.scale', [64]],
    ['model.model.output.weight', [300, 64]],
    ['lm_head.weight', [300, 64]],
    ['visual_tokenizer.quantizer.0.embedding.weight', [128, 32]],
    ['visual_tokenizer.encoder.bias', [16]],
    ['scalar', []],
    ['empty', [0, 8]],
  ]
  return new Map(
    shapes.map(([key, shape], i) => [
      key,
      {
        shape,
        data: values(
          shape.reduce((a, b) => a * b, 1),
          i + 1,
        ),
      },
    ]),
  )
}

async function sameFiles(t: Test, a: string, b: string): Promise<void> {
  const names = (await readdir(a)).sort()
  t.same((await readdir(b)).sort(), names, 'the same files')
  for (const name of names)
    t.ok((await readFile(join(a, name))).equals(await readFile(join(b, name))), `${name} is identical`)
}

for (const dtype of ['BF16', 'F32'] as const) {
  t.test(`streaming ${dtype} writes the same shards, index and extra files as writeCheckpoint`, async (t) => {
    const root = await tempDir(t)
    const tensors = smallTensors()
    const opts = {
      dtype,
      shardBytes: 40_000,
      extraFiles: { 'config.json': '{"__class__": "KeyeARConfig"}\n', 'tokenizer.json': Uint8Array.of(123, 125) },
    }
    await writeCheckpoint(join(root, 'held'), tensors, opts)

    const asked: string[] = []
    const streamed = join(root, 'streamed')
    const specs = [...tensors].map(([key, { shape }]) => ({ key, shape }))
    await writeCheckpointStreaming(
      streamed,
      specs,
      (key, shape) => {
        const tensor = tensors.get(key) as TensorToWrite
        t.same(shape, tensor.shape, `${key} is asked for with its shape`)
        asked.push(key)
        return tensor.data
      },
      opts,
    )

    t.same(asked, [...tensors.keys()].sort(), 'each tensor asked for once, in sorted key order')
    const shards = (await readdir(streamed)).filter((name) => name.endsWith('.safetensors'))
    t.ok(shards.length >= 3, `several shards (${shards.length})`)
    t.ok(shards.includes(`model-00000-of-${String(shards.length).padStart(5, '0')}.safetensors`), 'counted from zero')
    t.ok((await readdir(streamed)).includes(INDEX_FILE))
    await sameFiles(t, join(root, 'held'), streamed)
  })
}

t.test('each tensor is written before the next is asked for, and the producer may be async', async (t) => {
  const dir = join(await tempDir(t), 'out')
  const tensors = smallTensors()
  const specs = [...tensors].map(([key, { shape }]) => ({ key, shape }))
  let expectedOnDisk = 0
  await writeCheckpointStreaming(
    dir,
    specs,
    async (key) => {
      const names = (await readdir(dir)).filter((name) => name.endsWith('.safetensors'))
      let data = 0
      for (const name of names) {
        const bytes = await readFile(join(dir, name))
        data += bytes.byteLength - 8 - Number(bytes.readBigUInt64LE(0))
      }
      t.equal(data, expectedOnDisk, `the tensors before ${key} are on disk`)
      const values = (tensors.get(key) as TensorToWrite).data
      expectedOnDisk += values.length * 2
      return values
    },
    { dtype: 'BF16', shardBytes: 40_000 },
  )
  t.ok((await stat(join(dir, INDEX_FILE))).isFile())
})

t.test(
  'streaming refuses duplicate keys and bad shapes before writing, and values that do not fill their shape',
  async (t) => {
    const dir = join(await tempDir(t), 'out')
    const none = () => {
      throw new Error('nothing should be produced')
    }
    const twice = [
      { key: 'a', shape: [2] },
      { key: 'a', shape: [2] },
    ]
    await t.rejects(writeCheckpointStreaming(dir, twice, none, { dtype: 'BF16', shardBytes: 2 }), {
      code: 'CONVERT_OPTION_INVALID',
      message: /tensor key a is given twice/,
    })
    await t.rejects(
      writeCheckpointStreaming(dir, [{ key: 'a', shape: [-1] }], none, { dtype: 'BF16', shardBytes: 2 }),
      { code: 'CHECKPOINT_SHAPE_MISMATCH' },
    )
    await t.rejects(writeCheckpointStreaming(dir, [], none, { dtype: 'BF16', shardBytes: 2 }), {
      code: 'CONVERT_OPTION_INVALID',
    })
    await t.rejects(readdir(dir), { code: 'ENOENT' }, 'nothing was written')
    await t.rejects(
      writeCheckpointStreaming(dir, [{ key: 'w', shape: [3, 2] }], () => new Float32Array(5), {
        dtype: 'F32',
        shardBytes: 8,
      }),
      { code: 'CHECKPOINT_SHAPE_MISMATCH', message: /tensor w / },
    )
  },
)
