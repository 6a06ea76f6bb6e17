/** Safetensors headers are validated against the file, and bf16/fp16/fp32 elements decode and encode bit-exactly. */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { decodeElements, encodeBf16, readSafetensorsHeader, writeSafetensors } from '../../src/convert/safetensors.js'
import { KelixError } from '../../src/errors/kelix-error.js'

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kelix-safetensors-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** A hand-made file: the 8-byte length of `header` (or `claimedLength`), the header, then `dataBytes` zero bytes. */
async function rawFile(path: string, header: unknown, dataBytes: number, claimedLength?: number): Promise<string> {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header))
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(claimedLength ?? json.byteLength))
  await writeFile(path, Buffer.concat([length, json, Buffer.alloc(dataBytes)]))
  return path
}

async function headerError(path: string): Promise<KelixError> {
  try {
    await readSafetensorsHeader(path)
  } catch (err) {
    if (err instanceof KelixError) return err
    throw err
  }
  throw new Error(`${path} was read`)
}

/** Little-endian u16 values as bytes, starting `pad` bytes into a larger buffer (so the view is not aligned). */
function u16Bytes(values: number[], pad = 0): Uint8Array {
  const bytes = new Uint8Array(pad + values.length * 2)
  values.forEach((v, i) => new DataView(bytes.buffer).setUint16(pad + 2 * i, v, true))
  return bytes.subarray(pad)
}

const bits = (values: Float32Array): number[] => [...new Uint32Array(values.buffer, values.byteOffset, values.length)]
const u16 = (bytes: Uint8Array): number[] =>
  Array.from({ length: bytes.byteLength / 2 }, (_, i) =>
    new DataView(bytes.buffer, bytes.byteOffset).getUint16(2 * i, true),
  )

t.test('bf16 values that bf16 represents exactly survive a write and a read', async (t) => {
  const path = join(await tempDir(t), 'exact.safetensors')
  // 3.0e5 rounds to 299008 in bf16; 2^-133 is the smallest bf16 subnormal.
  const values = Float32Array.of(1.5, -0.375, 299008, 0, -0, 2 ** -133, Infinity, -Infinity)
  await writeSafetensors(path, [{ key: 'w', shape: [2, 4], data: values }], 'BF16')
  const { tensors, metadata } = await readSafetensorsHeader(path)
  const w = tensors.get('w')
  t.same(metadata, { format: 'pt' })
  t.same(w && { dtype: w.dtype, shape: w.shape, byteLength: w.byteLength }, {
    dtype: 'BF16',
    shape: [2, 4],
    byteLength: 16,
  })
  const bytes = (await readFile(path)).subarray(w?.dataOffset, (w?.dataOffset ?? 0) + 16)
  t.same(bits(decodeElements(bytes, 'BF16')), bits(values))
})

t.test('f32 values survive a write and a read bit for bit', async (t) => {
  const path = join(await tempDir(t), 'f32.safetensors')
  const values = Float32Array.of(Math.fround(0.1), -3.25, 1e-45, 3.4028234663852886e38, -0)
  await writeSafetensors(path, [{ key: 'v', shape: [5], data: values }], 'F32')
  const w = (await readSafetensorsHeader(path)).tensors.get('v')
  t.equal(w?.dtype, 'F32')
  t.equal(w?.byteLength, 20)
  const bytes = (await readFile(path)).subarray(w?.dataOffset, (w?.dataOffset ?? 0) + 20)
  t.same(bits(decodeElements(bytes, 'F32')), bits(values))
})

t.test('bf16 encoding rounds to nearest even as PyTorch does', async (t) => {
  const encoded = u16(
    encodeBf16(
      Float32Array.of(
        1 + 2 ** -8, // halfway between 1 and 1 + 2^-7: to the even mantissa, 1
        1 + 3 * 2 ** -8, // halfway between 1 + 2^-7 and 1 + 2^-6: to the even one, 1 + 2^-6
        1 + 2 ** -8 + 2 ** -20, // just above halfway: up to 1 + 2^-7
        -(1 + 2 ** -8),
        3.0e5, // 0x48927C00: the low half is under 0x8000, so down to 0x4892 (299008)
        3.4028234663852886e38, // float32's largest finite value rounds up to infinity
        NaN,
        -0,
      ),
    ),
  )
  t.same(encoded, [0x3f80, 0x3f82, 0x3f81, 0xbf80, 0x4892, 0x7f80, 0x7fc0, 0x8000])
  t.same([...decodeElements(encodeBf16(Float32Array.of(1 + 3 * 2 ** -8)), 'BF16')], [1 + 2 ** -6])
})

t.test('fp16 decoding covers normals, subnormals, infinities, signed zero and NaN', async (t) => {
  const halves = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x8001, 0x0400, 0x7c00, 0xfc00, 0x8000, 0x0000, 0x7e00]
  const expected = Float32Array.of(
    1,
    -2,
    65504,
    2 ** -24,
    1023 * 2 ** -24,
    -(2 ** -24),
    2 ** -14,
    Infinity,
    -Infinity,
    -0,
    0,
    NaN,
  )
  // Compared as bit patterns: -0 differs from 0, and the NaN keeps its quiet bit (0x7E00 → 0x7FC00000).
  t.same(bits(decodeElements(u16Bytes(halves, 1), 'F16')), bits(expected))
  t.equal(bits(expected)[11], 0x7fc00000)
})

t.test('elements decode from a view that is not 4-byte aligned', async (t) => {
  const f32 = new Uint8Array(3 + 8)
  new DataView(f32.buffer).setFloat32(3, 1.25, true)
  new DataView(f32.buffer).setFloat32(7, -7.5, true)
  t.same([...decodeElements(f32.subarray(3), 'F32')], [1.25, -7.5])
  t.same([...decodeElements(u16Bytes([0x3fc0, 0xbec0], 3), 'BF16')], [1.5, -0.375])
})

t.test('the writer sorts keys, packs data contiguously and pads the header with spaces to 8 bytes', async (t) => {
  const path = join(await tempDir(t), 'sorted.safetensors')
  await writeSafetensors(
    path,
    [
      { key: 'b.weight', shape: [3], data: new Float32Array(3) },
      { key: '10', shape: [1], data: new Float32Array(1) },
      { key: 'a.bias', shape: [2, 1], data: new Float32Array(2) },
    ],
    'BF16',
    { format: 'pt', note: 'x' },
  )
  const file = await readFile(path)
  const length = Number(file.readBigUInt64LE(0))
  const header = file.subarray(8, 8 + length).toString('utf8')
  t.equal(length % 8, 0)
  t.equal(file.byteLength, 8 + length + 12)
  t.equal(
    header.trimEnd(),
    '{"10":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]},"a.bias":{"dtype":"BF16","shape":[2,1],"data_offsets":[2,6]},' +
      '"b.weight":{"dtype":"BF16","shape":[3],"data_offsets":[6,12]},"__metadata__":{"format":"pt","note":"x"}}',
  )
  t.match(header, /^[^ ]* *$/, 'only trailing spaces pad it')
  t.equal(length - header.trimEnd().length, (8 - (header.trimEnd().length % 8)) % 8)
})

t.test('a file shorter than the 8-byte length is CHECKPOINT_SHARD_INVALID', async (t) => {
  const path = join(await tempDir(t), 'tiny.safetensors')
  await writeFile(path, Buffer.alloc(5))
  const err = await headerError(path)
  t.equal(err.code, 'CHECKPOINT_SHARD_INVALID')
  t.equal(err.fields.file, 'tiny.safetensors')
})

t.test('a header length larger than the file is CHECKPOINT_SHARD_INVALID', async (t) => {
  const path = await rawFile(join(await tempDir(t), 'long.safetensors'), {}, 0, 4096)
  const err = await headerError(path)
  t.equal(err.code, 'CHECKPOINT_SHARD_INVALID')
  t.equal(err.fields.file, 'long.safetensors')
  t.match(err.message, /^long\.safetensors: .*4096/)
})

t.test('an absurd header length is CHECKPOINT_SHARD_INVALID without reading it', async (t) => {
  const path = await rawFile(join(await tempDir(t), 'huge.safetensors'), {}, 0, 2 ** 40)
  const err = await headerError(path)
  t.equal(err.code, 'CHECKPOINT_SHARD_INVALID')
  t.match(err.message, String(2 ** 40))
})

t.test('a header that is not JSON is CHECKPOINT_SHARD_INVALID', async (t) => {
  const dir = await tempDir(t)
  const garbage = await headerError(await rawFile(join(dir, 'garbage.safetensors'), '{"w": {dtype: BF16', 16))
  t.equal(garbage.code, 'CHECKPOINT_SHARD_INVALID')
  t.equal(garbage.fields.file, 'garbage.safetensors')
  const list = await headerError(await rawFile(join(dir, 'list.safetensors'), '[1, 2]', 0))
  t.equal(list.code, 'CHECKPOINT_SHARD_INVALID')
})

t.test('an unsupported dtype is CHECKPOINT_DTYPE_UNSUPPORTED naming the key and dtype', async (t) => {
  const path = await rawFile(
    join(await tempDir(t), 'f64.safetensors'),
    {
      ok: { dtype: 'BF16', shape: [2], data_offsets: [0, 4] },
      'model.double': { dtype: 'F64', shape: [2], data_offsets: [4, 20] },
    },
    20,
  )
  const err = await headerError(path)
  t.equal(err.code, 'CHECKPOINT_DTYPE_UNSUPPORTED')
  t.equal(err.fields.file, 'f64.safetensors')
  t.match(err.message, /model\.double/)
  t.match(err.message, /F64/)
})

t.test(
  'data_offsets inconsistent with the shape are CHECKPOINT_SHARD_INVALID naming the key and byte counts',
  async (t) => {
    const path = await rawFile(
      join(await tempDir(t), 'lies.safetensors'),
      {
        'layer.weight': { dtype: 'BF16', shape: [3, 4], data_offsets: [0, 20] },
      },
      24,
    )
    const err = await headerError(path)
    t.equal(err.code, 'CHECKPOINT_SHARD_INVALID')
    t.equal(err.fields.file, 'lies.safetensors')
    t.match(err.message, /layer\.weight/)
    t.match(err.message, /\b24\b/)
    t.match(err.message, /\b20\b/)
  },
)

t.test('a malformed entry is CHECKPOINT_SHARD_INVALID naming the key', async (t) => {
  const dir = await tempDir(t)
  const shape = await headerError(
    await rawFile(join(dir, 'shape.safetensors'), { s: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, 4),
  )
  t.equal(shape.code, 'CHECKPOINT_SHARD_INVALID')
  t.match(shape.message, /tensor s /)
  const offsets = await headerError(
    await rawFile(join(dir, 'offsets.safetensors'), { o: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, 4),
  )
  t.equal(offsets.code, 'CHECKPOINT_SHARD_INVALID')
  t.match(offsets.message, /tensor o /)
})

t.test('overlapping tensors are CHECKPOINT_SHARD_INVALID naming both', async (t) => {
  const path = await rawFile(
    join(await tempDir(t), 'overlap.safetensors'),
    {
      first: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
      second: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
    },
    16,
  )
  const err = await headerError(path)
  t.equal(err.code, 'CHECKPOINT_SHARD_INVALID')
  t.equal(err.fields.file, 'overlap.safetensors')
  t.match(err.message, /first/)
  t.match(err.message, /second/)
})

t.test('a tensor past the end of the file is CHECKPOINT_SHARD_INVALID naming it and both byte positions', async (t) => {
  const header = {
    early: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    late: { dtype: 'F32', shape: [4], data_offsets: [8, 24] },
  }
  const path = await rawFile(join(await tempDir(t), 'cut.safetensors'), header, 12)
  const dataStart = 8 + JSON.stringify(header).length
  const err = await headerError(path)
  t.equal(err.code, 'CHECKPOINT_SHARD_INVALID')
  t.equal(err.fields.file, 'cut.safetensors')
  t.match(
    err.message,
    new RegExp(`ends at byte ${dataStart + 12} but the tensor late needs bytes up to ${dataStart + 24}`),
  )
})

t.test('a missing file is CHECKPOINT_FILE_MISSING naming it', async (t) => {
  const err = await headerError(join(await tempDir(t), 'absent.safetensors'))
  t.equal(err.code, 'CHECKPOINT_FILE_MISSING')
  t.equal(err.fields.file, 'absent.safetensors')
})
