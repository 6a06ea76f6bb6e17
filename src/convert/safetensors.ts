/**
 * Safetensors files, without a third-party library: an 8-byte little-endian
 * header length, a JSON header `{key: {dtype, shape, data_offsets: [begin, end]},
 * "__metadata__": {...}}`, then the tensor data, with offsets counted from the
 * end of the header.
 *
 * The reader reads the header only and checks it against the file's size, so a
 * truncated or lying shard fails once, at open, before any tensor is read.
 */
import { open, type FileHandle } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import { elementCount } from '../builder/tensor-data.js'
import { isJsonObject } from './json-object.js'
import { KelixError } from '../errors/kelix-error.js'

/** The element types the converter reads (the published checkpoints are all BF16; diffusers' VAE is F32). */
export type StoredDtype = 'BF16' | 'F16' | 'F32'

/** Bytes per element of each dtype the converter reads. */
export const ELEMENT_BYTES: Readonly<Record<StoredDtype, number>> = { BF16: 2, F16: 2, F32: 4 }

/** Where one tensor lies in a shard, as its header describes it (already checked against the file). */
export interface StoredTensor {
  key: string
  dtype: StoredDtype
  shape: number[]
  /** Path of the shard. */
  file: string
  /** Absolute byte offset of the first element in the file. */
  dataOffset: number
  byteLength: number
}

/** The header key that holds string metadata rather than a tensor. */
const METADATA_KEY = '__metadata__'
/** The largest header accepted, as the reference library: real headers are tens of kilobytes. */
const MAX_HEADER_BYTES = 100_000_000

/**
 * Reads and validates the header of a safetensors file: the first 8 bytes and
 * the JSON header, never the data. Every error names the file by its base name.
 */
export async function readSafetensorsHeader(
  path: string,
): Promise<{ tensors: Map<string, StoredTensor>; metadata: Record<string, string> }> {
  const file = basename(path)
  const handle = await openShard(path)
  try {
    const fileSize = (await handle.stat()).size
    if (fileSize < 8) throw shardInvalid(file, `the file has ${fileSize} bytes, fewer than the 8 of the header length`)
    const lengthBytes = await readExactly(handle, 0, new Uint8Array(8), file)
    const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true)
    if (headerLength < 2n || headerLength > BigInt(MAX_HEADER_BYTES)) {
      throw shardInvalid(file, `the header length is ${headerLength} bytes; expected 2 to ${MAX_HEADER_BYTES}`)
    }
    const headerBytes = Number(headerLength)
    if (8 + headerBytes > fileSize) {
      throw shardInvalid(
        file,
        `the header length is ${headerBytes} bytes but the file has only ${fileSize - 8} after it`,
      )
    }
    const header = parseHeader(await readExactly(handle, 8, new Uint8Array(headerBytes), file), file)
    return checkEntries(header, path, 8 + headerBytes, fileSize)
  } finally {
    await handle.close()
  }
}

/** Opens a shard for reading; a missing file is CHECKPOINT_FILE_MISSING naming it. */
export async function openShard(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new KelixError('CHECKPOINT_FILE_MISSING', `not found in ${dirname(path)}`, { file: basename(path) })
    }
    throw err
  }
}

/**
 * Fills `into` from `position` by positional reads. A file that ends first
 * (it shrank since its header was read) is CHECKPOINT_SHARD_INVALID naming `file`.
 */
export async function readExactly(
  handle: FileHandle,
  position: number,
  into: Uint8Array,
  file: string,
): Promise<Uint8Array> {
  let done = 0
  while (done < into.byteLength) {
    const { bytesRead } = await handle.read(into, done, into.byteLength - done, position + done)
    if (bytesRead === 0) {
      throw shardInvalid(
        file,
        `read ${done} of ${into.byteLength} bytes at byte ${position}: the file ends at byte ${position + done}`,
      )
    }
    done += bytesRead
  }
  return into
}
/**
 * Decodes little-endian elements to float32, bit-exactly (NaN payloads kept).
 * `bytes` may start at any offset of its buffer.
 */
export function decodeElements(bytes: Uint8Array, dtype: StoredDtype): Float32Array {
  const out = new Float32Array(bytes.byteLength / ELEMENT_BYTES[dtype])
  decodeInto(bytes, dtype, out, 0)
  return out
}

/** Whether typed-array views read little-endian data as is (every platform ONNX Runtime ships for). */
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1

/**
 * Decodes `bytes` into `out` from element `at`, without a temporary array. On a
 * little-endian host with aligned bytes bf16 is read through a Uint16Array view
 * (about 3× faster than a DataView); otherwise a DataView reads at any alignment.
 */
export function decodeInto(bytes: Uint8Array, dtype: StoredDtype, out: Float32Array, at: number): void {
  const size = ELEMENT_BYTES[dtype]
  if (bytes.byteLength % size !== 0)
    throw new RangeError(`${bytes.byteLength} bytes are not a whole number of ${dtype} elements`)
  const count = bytes.byteLength / size
  if (at < 0 || at + count > out.length) throw new RangeError(`${count} elements at ${at} do not fit ${out.length}`)
  const bits = new Uint32Array(out.buffer, out.byteOffset + at * 4, count)
  if (dtype === 'BF16' && LITTLE_ENDIAN && bytes.byteOffset % 2 === 0) {
    const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, count)
    for (let i = 0; i < count; i++) bits[i] = (halves[i] as number) << 16
    return
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  switch (dtype) {
    case 'BF16':
      for (let i = 0; i < count; i++) bits[i] = view.getUint16(2 * i, true) << 16
      break
    case 'F16':
      for (let i = 0; i < count; i++) bits[i] = halfToFloatBits(view.getUint16(2 * i, true))
      break
    case 'F32':
      for (let i = 0; i < count; i++) bits[i] = view.getUint32(4 * i, true)
      break
  }
}

/**
 * Encodes float32 values as little-endian bfloat16, rounding to nearest even as
 * PyTorch's `.to(torch.bfloat16)` does (every NaN becomes the quiet NaN 0x7FC0).
 */
export function encodeBf16(values: Float32Array): Uint8Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length)
  const out = new Uint8Array(values.length * 2)
  const view = new DataView(out.buffer)
  for (let i = 0; i < values.length; i++) {
    const u = bits[i] as number
    const nan = (u & 0x7fffffff) > 0x7f800000
    view.setUint16(2 * i, nan ? 0x7fc0 : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16, true)
  }
  return out
}

/** A tensor's key and shape, its values to be produced when the file is written. */
export interface TensorShape {
  key: string
  shape: readonly number[]
}

/** Gives the row-major float32 values of one tensor; called once per tensor, in the file's order. */
export type ProduceTensor = (key: string, shape: readonly number[]) => Float32Array | Promise<Float32Array>

/** Values encoded and written per write call: bounds the encoded copy (32 MiB of BF16, 64 MiB of F32). */
const WRITE_CHUNK_ELEMENTS = 16 * 1024 * 1024

/**
 * Writes one safetensors file: tensors in sorted key order (as Kelix's upload
 * script writes them), data contiguous in that order, the JSON header compact
 * with `__metadata__` last and padded with spaces to a multiple of 8 bytes (as
 * the reference library pads it). Every tensor's data is checked before the
 * file is opened.
 */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyArray<{ key: string; shape: readonly number[]; data: Float32Array }>,
  dtype: 'BF16' | 'F32',
  metadata: Record<string, string> = { format: 'pt' },
): Promise<void> {
  const file = basename(path)
  for (const tensor of tensors) checkTensorData(tensor.key, tensor.shape, tensor.data, file)
  const data = new Map(tensors.map((tensor) => [tensor.key, tensor.data]))
  await writeSafetensorsStreaming(path, tensors, (key) => data.get(key) as Float32Array, dtype, metadata)
}

/**
 * `writeSafetensors` with the values produced one tensor at a time: the header
 * is built from `specs` (keys and shapes checked before the file is opened),
 * then `produce` is asked for each tensor in sorted key order, and its values
 * are encoded and written, a bounded chunk at a time, before the next tensor is
 * asked for. Only the tensor being written is held (by the producer).
 */
export async function writeSafetensorsStreaming(
  path: string,
  specs: ReadonlyArray<TensorShape>,
  produce: ProduceTensor,
  dtype: 'BF16' | 'F32',
  metadata: Record<string, string> = { format: 'pt' },
): Promise<void> {
  const file = basename(path)
  const sorted = [...specs].sort((a, b) => compareKeys(a.key, b.key))
  const header = safetensorsHeader(sorted, dtype, metadata, file)
  const handle = await open(path, 'w')
  try {
    let position = await writeFully(handle, header, 0)
    for (const { key, shape } of sorted) {
      const data = await produce(key, shape)
      checkTensorData(key, shape, data, file)
      for (let at = 0; at < data.length; at += WRITE_CHUNK_ELEMENTS) {
        const chunk = data.subarray(at, Math.min(data.length, at + WRITE_CHUNK_ELEMENTS))
        position = await writeFully(handle, dtype === 'BF16' ? encodeBf16(chunk) : encodeF32(chunk), position)
      }
    }
  } finally {
    await handle.close()
  }
}

/** The bytes before the data: the 8-byte header length and the padded JSON header of `sorted` tensors. */
function safetensorsHeader(
  sorted: ReadonlyArray<TensorShape>,
  dtype: 'BF16' | 'F32',
  metadata: Record<string, string>,
  file: string,
): Uint8Array {
  const entries: string[] = []
  let offset = 0
  for (const [i, { key, shape }] of sorted.entries()) {
    checkShape(key, shape, file)
    if (key === METADATA_KEY || key === sorted[i - 1]?.key) {
      throw new KelixError('CONVERT_OPTION_INVALID', `tensor key ${key} is reserved or given twice`, { file: file })
    }
    const end = offset + elementCount(shape) * ELEMENT_BYTES[dtype]
    // Built by hand, not from an object: an object would move integer-like keys to the front.
    entries.push(`${JSON.stringify(key)}:${JSON.stringify({ dtype, shape, data_offsets: [offset, end] })}`)
    offset = end
  }
  entries.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`)
  const json = `{${entries.join(',')}}`
  const jsonBytes = Buffer.byteLength(json)
  const padded = Buffer.from(json + ' '.repeat((8 - (jsonBytes % 8)) % 8))
  const bytes = new Uint8Array(8 + padded.byteLength)
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded.byteLength), true)
  bytes.set(padded, 8)
  return bytes
}

/** Writes all of `bytes` at `position` (a write may be partial); returns the position after them. */
async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<number> {
  for (let done = 0; done < bytes.byteLength;) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done, position + done)
    if (bytesWritten === 0) throw new Error(`wrote 0 of ${bytes.byteLength - done} bytes at byte ${position + done}`)
    done += bytesWritten
  }
  return position + bytes.byteLength
}

/** Throws CHECKPOINT_SHAPE_MISMATCH when `data` does not hold exactly the elements of `shape`. */
export function checkTensorData(key: string, shape: readonly number[], data: Float32Array, file?: string): void {
  checkShape(key, shape, file)
  if (data.length !== elementCount(shape)) {
    throw new KelixError(
      'CHECKPOINT_SHAPE_MISMATCH',
      `tensor ${key} has ${data.length} values but shape [${shape.join(', ')}] needs ${elementCount(shape)}`,
      { file: file },
    )
  }
}

/** Throws CHECKPOINT_SHAPE_MISMATCH when `shape` is not a list of non-negative integers. */
export function checkShape(key: string, shape: readonly number[], file?: string): void {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new KelixError(
      'CHECKPOINT_SHAPE_MISMATCH',
      `tensor ${key} has shape ${JSON.stringify(shape)}, not a list of non-negative integers`,
      { file: file },
    )
  }
}

/** Orders keys by UTF-16 code units (the same as Python's `sorted` for ASCII keys). */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function encodeF32(values: Float32Array): Uint8Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length)
  const out = new Uint8Array(values.length * 4)
  const view = new DataView(out.buffer)
  for (let i = 0; i < values.length; i++) view.setUint32(4 * i, bits[i] as number, true)
  return out
}

/** The float32 bit pattern of an IEEE half (subnormals, infinities and NaN payloads included). */
function halfToFloatBits(half: number): number {
  const sign = (half & 0x8000) << 16
  const exponent = (half >>> 10) & 0x1f
  const mantissa = half & 0x3ff
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0
  if (mantissa === 0) return sign >>> 0
  // A subnormal half is mantissa · 2^-24: shift its leading one up to bit 10 to normalise it.
  const shift = Math.clz32(mantissa) - 21
  return (sign | ((113 - shift) << 23) | (((mantissa << shift) & 0x3ff) << 13)) >>> 0
}

function parseHeader(bytes: Uint8Array, file: string): Record<string, unknown> {
  let parsed: unknown
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch {
    throw shardInvalid(file, `the ${bytes.byteLength}-byte header is not valid UTF-8 JSON`)
  }
  if (!isJsonObject(parsed)) throw shardInvalid(file, 'the header is not a JSON object')
  return parsed
}

function checkEntries(
  header: Record<string, unknown>,
  path: string,
  dataStart: number,
  fileSize: number,
): { tensors: Map<string, StoredTensor>; metadata: Record<string, string> } {
  const file = basename(path)
  const tensors = new Map<string, StoredTensor>()
  let metadata: Record<string, string> = {}
  for (const [key, entry] of Object.entries(header)) {
    if (key === METADATA_KEY) metadata = checkMetadata(entry, file)
    else tensors.set(key, checkEntry(key, entry, path, dataStart, fileSize))
  }
  checkNoOverlap([...tensors.values()], dataStart, file)
  return { tensors, metadata }
}

function checkEntry(key: string, entry: unknown, path: string, dataStart: number, fileSize: number): StoredTensor {
  const file = basename(path)
  if (!isJsonObject(entry)) throw shardInvalid(file, `the header entry of ${key} is not an object`)
  const { dtype, shape, data_offsets: offsets } = entry
  if (typeof dtype !== 'string') throw shardInvalid(file, `tensor ${key} has no string dtype`)
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw shardInvalid(file, `tensor ${key} has shape ${JSON.stringify(shape)}, not a list of non-negative integers`)
  }
  const range = byteRange(offsets)
  if (range === undefined) {
    throw shardInvalid(
      file,
      `tensor ${key} has data_offsets ${JSON.stringify(offsets)}, not [begin, end] integers with begin <= end`,
    )
  }
  const [begin, end] = range
  if (!Object.hasOwn(ELEMENT_BYTES, dtype)) {
    throw new KelixError(
      'CHECKPOINT_DTYPE_UNSUPPORTED',
      `tensor ${key} has dtype ${dtype}; only BF16, F16 and F32 are read`,
      { file: file },
    )
  }
  const stored = dtype as StoredDtype
  const needed = elementCount(shape) * ELEMENT_BYTES[stored]
  if (end - begin !== needed) {
    throw shardInvalid(
      file,
      `tensor ${key} (${stored}, shape [${shape.join(', ')}]) needs ${needed} bytes but its data_offsets [${begin}, ${end}] hold ${end - begin}`,
    )
  }
  if (dataStart + end > fileSize) {
    throw shardInvalid(
      file,
      `the file ends at byte ${fileSize} but the tensor ${key} needs bytes up to ${dataStart + end}`,
    )
  }
  return { key, dtype: stored, shape: shape as number[], file: path, dataOffset: dataStart + begin, byteLength: needed }
}

function checkMetadata(entry: unknown, file: string): Record<string, string> {
  if (!isJsonObject(entry) || !Object.values(entry).every((v) => typeof v === 'string')) {
    throw shardInvalid(file, `${METADATA_KEY} is not an object of strings`)
  }
  return entry as Record<string, string>
}

/** Two tensors sharing bytes would alias each other: a corrupt header. */
function checkNoOverlap(tensors: StoredTensor[], dataStart: number, file: string): void {
  const ranges = tensors.filter((t) => t.byteLength > 0).sort((a, b) => a.dataOffset - b.dataOffset)
  for (let i = 1; i < ranges.length; i++) {
    const previous = ranges[i - 1] as StoredTensor
    const current = ranges[i] as StoredTensor
    if (current.dataOffset < previous.dataOffset + previous.byteLength) {
      const range = (t: StoredTensor): string =>
        `[${t.dataOffset - dataStart}, ${t.dataOffset - dataStart + t.byteLength}]`
      throw shardInvalid(
        file,
        `tensors ${previous.key} ${range(previous)} and ${current.key} ${range(current)} overlap`,
      )
    }
  }
}

/** `data_offsets` as [begin, end], or undefined when it is not two counts in order. */
function byteRange(offsets: unknown): [number, number] | undefined {
  if (!Array.isArray(offsets) || offsets.length !== 2) return undefined
  const [begin, end]: unknown[] = offsets
  return isCount(begin) && isCount(end) && begin <= end ? [begin, end] : undefined
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function shardInvalid(file: string, detail: string): KelixError {
  return new KelixError('CHECKPOINT_SHARD_INVALID', detail, { file: file })
}
