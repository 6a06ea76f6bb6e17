/**
 * The benchmark's GGUF writer (bench/gguf): ggml's block formats decoded as
 * the format defines them, files read back by @huggingface/gguf's parser, and
 * the preset's LLM written from a tiny checkpoint with its own weights.
 */
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gguf as parseGguf, GGMLQuantizationType } from '@huggingface/gguf'
import t from 'tap'
import { encodeGgml, ggmlBytes } from '../../bench/gguf/ggml-blocks.js'
import { gguf, writeGguf } from '../../bench/gguf/gguf-file.js'
import { writeQwen3Gguf } from '../../bench/gguf/qwen3-gguf.js'
import { ggufBytesEstimate } from '../../bench/preset-model.js'
import { TINY_CHECKPOINT_SIZES, writeTinyCheckpoint } from '../../src/builder/tiny-checkpoint.js'
import { Checkpoint } from '../../src/convert/checkpoint.js'

/** IEEE half → number (the test's own decoder). */
function half(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1
  const exponent = (bits >> 10) & 0x1f
  const mantissa = bits & 0x3ff
  if (exponent === 0) return sign * mantissa * 2 ** -24
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15)
}

/** Q8_0 and Q4_0 decoded as ggml's dequantize_row_* define them. */
function decode(type: 'Q8_0' | 'Q4_0', bytes: Uint8Array): { values: Float32Array; scales: number[] } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const blockBytes = type === 'Q8_0' ? 34 : 18
  const values = new Float32Array((bytes.length / blockBytes) * 32)
  const scales: number[] = []
  for (let b = 0; b * blockBytes < bytes.length; b++) {
    const at = b * blockBytes
    const d = half(view.getUint16(at, true))
    scales.push(d)
    for (let j = 0; j < (type === 'Q8_0' ? 32 : 16); j++) {
      if (type === 'Q8_0') values[32 * b + j] = d * view.getInt8(at + 2 + j)
      else {
        const q = bytes[at + 2 + j] as number
        values[32 * b + j] = d * ((q & 0x0f) - 8)
        values[32 * b + 16 + j] = d * ((q >> 4) - 8)
      }
    }
  }
  return { values, scales }
}

const ramp = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => f(i))

/** How far a Q8_0 value may land from x: half a step, plus |q| ≤ 127 times the scale's float16 rounding (2^-11 of d). */
const q8Tolerance = (d: number) => d * (0.5 + 127 * 2 ** -11)

t.test('Q8_0: a float16 scale max|x|/127, then round(x/d) per value', async (t) => {
  const x = ramp(64, (i) => (i < 32 ? (i - 16) / 4 : Math.sin(i) * 0.01))
  const bytes = encodeGgml('Q8_0', x)
  t.equal(bytes.length, 68, 'two blocks of 2 + 32 bytes')
  const { values, scales } = decode('Q8_0', bytes)
  t.equal(scales[0], half(0x2808), 'd = 4/127 as float16 (0x2808)')
  t.equal(new DataView(bytes.buffer).getInt8(2), -127, "the block's largest |x| is ±127")
  t.equal(new DataView(bytes.buffer).getInt8(2 + 16), 0)
  for (let i = 0; i < 64; i++)
    t.ok(
      Math.abs((values[i] as number) - (x[i] as number)) <= q8Tolerance(scales[i >> 5] as number),
      `value ${i} within half a step`,
    )
})

t.test('Q4_0: d = x_m/−8, value j in the low nibble and 16+j in the high nibble of byte j', async (t) => {
  const x = ramp(32, (i) => (i === 5 ? -2 : i === 20 ? 1.75 : 0.25 * ((i % 7) - 3)))
  const bytes = encodeGgml('Q4_0', x)
  t.equal(bytes.length, 18)
  const { values, scales } = decode('Q4_0', bytes)
  t.equal(scales[0], 0.25, 'd = −2 / −8')
  t.equal((bytes[2 + 5] as number) & 0x0f, 0, 'the largest |x| (−2) is code 0: d·(0 − 8) = −2')
  t.equal((bytes[2 + 4] as number) >> 4, 15, '1.75 = d·7: code 15, the top of the range')
  t.same(Array.from(values), Array.from(x), 'values on the grid d·(q − 8) come back exactly')
  const clipped = decode(
    'Q4_0',
    encodeGgml(
      'Q4_0',
      ramp(32, (i) => (i === 0 ? -1 : i === 1 ? 1 : 0)),
    ),
  )
  t.equal(clipped.values[1], 0.875, '+|x_m| clips to code 15 (7/8 of it), as ggml does')
})

t.test('byte counts refuse a row that is not whole blocks', async (t) => {
  t.equal(ggmlBytes('F32', 3), 12)
  t.equal(ggmlBytes('Q4_0', 64), 36)
  t.throws(() => ggmlBytes('Q8_0', 48), /Q8_0 stores blocks of 32 values; 48 is not a multiple/)
})

t.test('a GGUF file reads back with its metadata, tensor infos and aligned data', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kelix-gguf-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'm.gguf')
  const a = ramp(3, (i) => i + 0.5)
  const b = ramp(64, (i) => i / 64)
  const { bytes } = await writeGguf(
    path,
    {
      'general.architecture': gguf.string('qwen3'),
      'x.count': gguf.u32(7),
      'x.eps': gguf.f32(0.5),
      'x.flag': gguf.bool(true),
      'x.names': gguf.strings(['a', 'bc']),
      'x.ids': gguf.i32s([-1, 2]),
    },
    [
      { name: 'a', dims: [3], type: 'F32', data: async () => encodeGgml('F32', a) },
      { name: 'b', dims: [32, 2], type: 'Q8_0', data: async () => encodeGgml('Q8_0', b) },
    ],
  )
  const parsed = await parseGguf(path, { allowLocalFile: true })
  t.match(parsed.metadata, {
    version: 3,
    tensor_count: 2n,
    kv_count: 6n,
    'general.architecture': 'qwen3',
    'x.count': 7,
    'x.eps': 0.5,
    'x.flag': true,
    'x.names': ['a', 'bc'],
    'x.ids': [-1, 2],
  })
  t.same(
    parsed.tensorInfos.map((i) => ({ name: i.name, shape: i.shape, dtype: i.dtype, offset: i.offset })),
    [
      { name: 'a', shape: [3n], dtype: GGMLQuantizationType.F32, offset: 0n },
      { name: 'b', shape: [32n, 2n], dtype: GGMLQuantizationType.Q8_0, offset: 32n },
    ],
  )
  t.equal(Number(parsed.tensorDataOffset) % 32, 0, 'tensor data starts on the alignment')
  const file = await readFile(path)
  t.equal(file.length, bytes)
  t.equal(bytes, Number(parsed.tensorDataOffset) + 32 + 96, 'the last tensor is padded to 32')
  const start = Number(parsed.tensorDataOffset)
  t.same(new Float32Array(file.buffer.slice(file.byteOffset + start, file.byteOffset + start + 12)), a)
  t.same(Array.from(file.subarray(start + 32, start + 32 + 68)), Array.from(encodeGgml('Q8_0', b)))
})

t.test('a tensor of the wrong size fails the write and leaves no file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kelix-gguf-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'm.gguf')
  await t.rejects(
    writeGguf(path, {}, [{ name: 'w', dims: [32, 2], type: 'Q4_0', data: async () => new Uint8Array(18) }]),
    /GGUF tensor w: 18 bytes produced, 36 expected for Q4_0 \[32, 2\]/,
  )
  t.same(await readdir(dir), [])
})

t.test("the preset LLM as a Qwen3 GGUF: the checkpoint's own weights and tokenizer, sized as estimated", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kelix-gguf-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const checkpoint = join(dir, 'checkpoint')
  await writeTinyCheckpoint(checkpoint, 7)
  const s = TINY_CHECKPOINT_SIZES
  const path = join(dir, 'llm.gguf')
  await writeQwen3Gguf({ checkpoint, sizes: s, type: 'Q8_0', path })
  t.notOk(existsSync(`${path}.tmp`))
  const parsed = await parseGguf(path, { allowLocalFile: true })
  t.equal(
    (await stat(path)).size - Number(parsed.tensorDataOffset),
    ggufBytesEstimate(s, 'Q8_0'),
    'the disk estimate is the tensor data (the header, mostly the vocabulary, comes on top)',
  )
  t.match(parsed.metadata, {
    'general.architecture': 'qwen3',
    'general.file_type': 7,
    'qwen3.block_count': s.layers,
    'qwen3.embedding_length': s.hidden,
    'qwen3.feed_forward_length': s.intermediate,
    'qwen3.attention.head_count': s.heads,
    'qwen3.attention.head_count_kv': s.kvHeads,
    'qwen3.attention.key_length': s.headDim,
    'tokenizer.ggml.model': 'gpt2',
    'tokenizer.ggml.pre': 'qwen2',
    'tokenizer.ggml.eos_token_id': s.ids.eos,
  })
  const tokens = (parsed.metadata as unknown as Record<string, string[]>)['tokenizer.ggml.tokens'] as string[]
  t.equal(tokens.length, s.textVocab, 'one token per text id')
  const names = parsed.tensorInfos.map((i) => i.name)
  t.equal(names.length, 2 + 11 * s.layers + 1)
  t.same(names.slice(0, 3), ['token_embd.weight', 'blk.0.attn_norm.weight', 'blk.0.attn_q.weight'])
  const info = (name: string) => parsed.tensorInfos.find((i) => i.name === name) as (typeof parsed.tensorInfos)[number]
  t.same(info('output.weight').shape, [BigInt(s.hidden), BigInt(s.textVocab)], "the head's text rows")
  t.equal(info('output.weight').dtype, GGMLQuantizationType.Q8_0)
  t.equal(info('blk.0.ffn_norm.weight').dtype, GGMLQuantizationType.F32)

  const file = await readFile(path)
  const at = (name: string) => Number(parsed.tensorDataOffset + info(name).offset)
  const ckpt = await Checkpoint.open(checkpoint)
  t.teardown(() => ckpt.close())
  const embed = await ckpt.readRows('model.model.tok_embeddings.embed_tokens.weight', 1, 1)
  const start = at('token_embd.weight') + 4 * s.hidden
  t.same(
    new Float32Array(file.buffer.slice(file.byteOffset + start, file.byteOffset + start + 4 * s.hidden)),
    embed,
    "token_embd row 1 is the table's row 1",
  )
  const gate = await ckpt.read('model.model.layers.0.mlp.w1.weight')
  const stored = decode(
    'Q8_0',
    file.subarray(at('blk.0.ffn_gate.weight'), at('blk.0.ffn_gate.weight') + ggmlBytes('Q8_0', gate.length)),
  )
  const worst = gate.reduce(
    (m, v, i) => Math.max(m, Math.abs(v - (stored.values[i] as number)) / q8Tolerance(stored.scales[i >> 5] as number)),
    0,
  )
  t.ok(worst <= 1, `ffn_gate is mlp.w1 within half a quantization step (worst ${worst.toFixed(3)} of the tolerance)`)
})
