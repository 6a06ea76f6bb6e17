/**
 * A checkpoint directory in the published Kelix layout: safetensors shards
 * named by `model.safetensors.index.json` (or, without an index, every
 * `*.safetensors` file in the directory). Shard names are never assumed.
 *
 * Opening reads the headers only. Tensors are read row range by row range with
 * positional reads, so a converter holds no more than the rows it asked for.
 */
import { mkdir, readdir, readFile, stat, writeFile, type FileHandle } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { elementCount } from '../builder/tensor-data.js'
import { isJsonObject } from './json-object.js'
import {
  checkShape,
  checkTensorData,
  compareKeys,
  decodeInto,
  ELEMENT_BYTES,
  openShard,
  readExactly,
  readSafetensorsHeader,
  writeSafetensorsStreaming,
  type ProduceTensor,
  type StoredTensor,
  type TensorShape,
} from './safetensors.js'
import { KelixError } from '../errors/kelix-error.js'

export type { ProduceTensor, TensorShape } from './safetensors.js'

/** The index file of a sharded checkpoint (Hugging Face's name, kept by Kelix's upload script). */
export const INDEX_FILE = 'model.safetensors.index.json'

/** Bytes per positional read: bounds the transient buffer of a large read (a single read returns at most 2 GiB). */
const READ_CHUNK_BYTES = 64 * 1024 * 1024

/** A tensor to write: row-major float32 values of `shape`. */
export interface TensorToWrite {
  shape: readonly number[]
  data: Float32Array
}

/** An opened checkpoint: every tensor's location, from headers already checked; shard handles opened on first read. */
export class Checkpoint {
  /** Open shard handles by path, opened on first read and kept until `close`. */
  private readonly handles = new Map<string, Promise<FileHandle>>()
  private closed = false

  private constructor(
    /** The checkpoint directory. */
    readonly dir: string,
    private readonly tensors: ReadonlyMap<string, StoredTensor>,
    private readonly unindexed: readonly string[],
  ) {}

  /**
   * Reads the index (when there is one) and every shard's header, and checks
   * that they agree. Throws CHECKPOINT_DIR_MISSING, CHECKPOINT_FILE_MISSING,
   * CHECKPOINT_INDEX_INVALID, or a shard's CHECKPOINT_SHARD_INVALID /
   * CHECKPOINT_DTYPE_UNSUPPORTED.
   */
  static async open(dir: string): Promise<Checkpoint> {
    const info = await stat(dir).catch(() => undefined)
    if (!info?.isDirectory()) throw new KelixError('CHECKPOINT_DIR_MISSING', `${dir} is not a directory`)
    const found = (await exists(join(dir, INDEX_FILE))) ? await readIndexed(dir) : await readUnindexed(dir)
    return new Checkpoint(dir, found.tensors, found.unindexed)
  }

  /** Every tensor key, sorted (for an indexed checkpoint: the keys of the index). */
  keys(): string[] {
    return [...this.tensors.keys()].sort(compareKeys)
  }

  /** Whether the checkpoint has the tensor `key`. */
  has(key: string): boolean {
    return this.tensors.has(key)
  }

  /** Keys present in a shard the index names but absent from the index: ignored, listed for a warning. */
  unindexedKeys(): string[] {
    return [...this.unindexed]
  }

  /** Where `key` lies; CHECKPOINT_KEY_MISSING when the checkpoint has no such tensor. */
  tensor(key: string): StoredTensor {
    const tensor = this.tensors.get(key)
    if (tensor === undefined)
      throw new KelixError('CHECKPOINT_KEY_MISSING', `no tensor ${key} in the checkpoint ${this.dir}`)
    return tensor
  }

  /**
   * The tensor `key`, which must have `shape`: else CHECKPOINT_SHAPE_MISMATCH
   * naming the key, its shard, both shapes and `why` (the config field that
   * sets the expectation, e.g. "qwen_config.embed_dim = 64").
   */
  expectShape(key: string, shape: readonly number[], why?: string): StoredTensor {
    const tensor = this.tensor(key)
    if (tensor.shape.length !== shape.length || tensor.shape.some((d, i) => d !== shape[i])) {
      const reason = why === undefined ? '' : ` (${why})`
      throw new KelixError(
        'CHECKPOINT_SHAPE_MISMATCH',
        `${key} has shape [${tensor.shape.join(', ')}], expected [${shape.join(', ')}]${reason}`,
        { file: basename(tensor.file) },
      )
    }
    return tensor
  }

  /** The number of elements of `key`. */
  parameterCount(key: string): number {
    return elementCount(this.tensor(key).shape)
  }

  /**
   * Rows [first, first + count) of `key` along dim 0, as float32 (a 0-D tensor
   * has one row, a 1-D tensor one element per row). Reads those rows' bytes
   * only. Rows past the end are CHECKPOINT_SHAPE_MISMATCH; a shard that shrank
   * since it was opened is CHECKPOINT_SHARD_INVALID.
   */
  async readRows(key: string, first: number, count: number): Promise<Float32Array> {
    const tensor = this.tensor(key)
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(count) || first < 0 || count < 0) {
      throw new RangeError(`rows ${first} + ${count} of ${key}: first and count must be non-negative integers`)
    }
    const file = basename(tensor.file)
    const rows = tensor.shape[0] ?? 1
    if (first + count > rows) {
      throw new KelixError(
        'CHECKPOINT_SHAPE_MISMATCH',
        `rows [${first}, ${first + count}) of ${key} were asked for but its shape is [${tensor.shape.join(', ')}]`,
        { file: file },
      )
    }
    const elementBytes = ELEMENT_BYTES[tensor.dtype]
    const rowBytes = elementCount(tensor.shape.slice(1)) * elementBytes
    const start = tensor.dataOffset + first * rowBytes
    const total = count * rowBytes
    const out = new Float32Array(total / elementBytes)
    const handle = await this.handle(tensor.file)
    const chunk = new Uint8Array(Math.min(total, READ_CHUNK_BYTES))
    for (let done = 0; done < total; done += chunk.byteLength) {
      const bytes = chunk.subarray(0, Math.min(chunk.byteLength, total - done))
      await readExactly(handle, start + done, bytes, file)
      decodeInto(bytes, tensor.dtype, out, done / elementBytes)
    }
    return out
  }

  /** The whole tensor `key`, as float32. */
  read(key: string): Promise<Float32Array> {
    return this.readRows(key, 0, this.tensor(key).shape[0] ?? 1)
  }

  /** Closes every shard handle. Idempotent; reading after it throws. */
  async close(): Promise<void> {
    this.closed = true
    const pending = [...this.handles.values()]
    this.handles.clear()
    await Promise.all(pending.map(async (opening) => (await opening.catch(() => undefined))?.close()))
  }

  private handle(path: string): Promise<FileHandle> {
    if (this.closed) return Promise.reject(new Error(`the checkpoint ${this.dir} is closed`))
    let opening = this.handles.get(path)
    if (opening === undefined) {
      opening = openShard(path)
      this.handles.set(path, opening)
      // A failed open is not cached: the next read tries again.
      opening.catch(() => this.handles.delete(path))
    }
    return opening
  }
}

/** The text of `file` in the checkpoint directory `dir`; CHECKPOINT_FILE_MISSING naming it when it cannot be read. */
export async function readCheckpointFile(dir: string, file: string): Promise<string> {
  try {
    return await readFile(join(dir, file), 'utf8')
  } catch {
    throw new KelixError('CHECKPOINT_FILE_MISSING', `not found in ${dir}`, { file: file })
  }
}

/** Options of `writeCheckpoint` and `writeCheckpointStreaming`. */
export interface WriteCheckpointOptions {
  dtype: 'BF16' | 'F32'
  /** A shard is closed as soon as its data reaches this many bytes. */
  shardBytes: number
  /** Files written beside the weights (config.json, tokenizer files), by plain file name. */
  extraFiles?: Record<string, string | Uint8Array>
}

/**
 * Writes a checkpoint in the published layout (Kelix's upload script): keys
 * sorted, a shard closed as soon as its data reaches `shardBytes` (so it may
 * exceed it by one tensor), shards named `model-%05d-of-%05d.safetensors`
 * counted from zero, `model.safetensors.index.json` as `json.dump(indent=2)`
 * writes it, then `extraFiles` (config.json, tokenizer files) as given.
 * `dir` is created if missing; files already there with other names are kept.
 * Options and every tensor's data are checked before anything is written.
 */
export async function writeCheckpoint(
  dir: string,
  tensors: ReadonlyMap<string, TensorToWrite>,
  opts: WriteCheckpointOptions,
): Promise<void> {
  checkWriteOptions(opts, tensors.size)
  for (const key of [...tensors.keys()].sort(compareKeys)) {
    const { shape, data } = tensors.get(key) as TensorToWrite
    checkTensorData(key, shape, data)
  }
  const specs = [...tensors].map(([key, { shape }]) => ({ key, shape }))
  await writeCheckpointStreaming(dir, specs, (key) => (tensors.get(key) as TensorToWrite).data, opts)
}

/**
 * `writeCheckpoint` for a checkpoint too large to hold: the same files, byte for
 * byte, but each tensor's values come from `produce`, asked for one tensor at a
 * time in sorted key order; each is encoded and written before the next is
 * asked for, so only the tensor being written is in memory. Keys, shapes and
 * options are checked before anything is written; values that do not fill
 * their shape are CHECKPOINT_SHAPE_MISMATCH when produced.
 */
export async function writeCheckpointStreaming(
  dir: string,
  specs: ReadonlyArray<TensorShape>,
  produce: ProduceTensor,
  opts: WriteCheckpointOptions,
): Promise<void> {
  checkWriteOptions(opts, specs.length)
  const { dtype, shardBytes, extraFiles = {} } = opts
  const sorted = [...specs].sort((a, b) => compareKeys(a.key, b.key))
  for (const [i, { key, shape }] of sorted.entries()) {
    checkShape(key, shape)
    if (key === sorted[i - 1]?.key) throw optionInvalid(`tensor key ${key} is given twice`)
  }

  const shards: TensorShape[][] = []
  let current: TensorShape[] = []
  let currentBytes = 0
  let totalBytes = 0
  for (const spec of sorted) {
    const bytes = elementCount(spec.shape) * ELEMENT_BYTES[dtype]
    current.push(spec)
    currentBytes += bytes
    totalBytes += bytes
    if (currentBytes >= shardBytes) {
      shards.push(current)
      current = []
      currentBytes = 0
    }
  }
  if (current.length > 0) shards.push(current)

  await mkdir(dir, { recursive: true })
  const weightMap: Array<[string, string]> = []
  for (const [i, inShard] of shards.entries()) {
    const name = shardName(i, shards.length)
    await writeSafetensorsStreaming(join(dir, name), inShard, produce, dtype)
    for (const { key } of inShard) weightMap.push([key, name])
  }
  await writeFile(join(dir, INDEX_FILE), indexText(totalBytes, weightMap))
  for (const [name, content] of Object.entries(extraFiles)) await writeFile(join(dir, name), content)
}

/** CONVERT_OPTION_INVALID for a bad dtype or shard size, no tensors, or an extra file that is not a plain name or would replace weights. */
function checkWriteOptions(opts: WriteCheckpointOptions, tensorCount: number): void {
  const { dtype, shardBytes, extraFiles = {} } = opts
  if (dtype !== 'BF16' && dtype !== 'F32') throw optionInvalid(`dtype is ${String(dtype)}; expected BF16 or F32`)
  if (!Number.isSafeInteger(shardBytes) || shardBytes <= 0)
    throw optionInvalid(`shardBytes is ${shardBytes}; expected a positive integer`)
  if (tensorCount === 0) throw optionInvalid('there are no tensors to write')
  for (const name of Object.keys(extraFiles)) {
    if (!isPlainFileName(name) || name === INDEX_FILE || name.endsWith('.safetensors')) {
      throw optionInvalid(`extra file ${JSON.stringify(name)} is not a plain file name or would replace a weight file`)
    }
  }
}

/** `model-00000-of-00003.safetensors`: counted from zero, as Kelix's upload script names shards. */
function shardName(index: number, count: number): string {
  const pad = (n: number): string => String(n).padStart(5, '0')
  return `model-${pad(index)}-of-${pad(count)}.safetensors`
}

/** The index as Python's `json.dump(index, f, indent=2)` writes it (built by hand to keep the key order). */
function indexText(totalBytes: number, weightMap: ReadonlyArray<[string, string]>): string {
  const entries = weightMap.map(([key, shard]) => `    ${JSON.stringify(key)}: ${JSON.stringify(shard)}`)
  return `{\n  "metadata": {\n    "total_size": ${totalBytes}\n  },\n  "weight_map": {\n${entries.join(',\n')}\n  }\n}`
}

async function readIndexed(dir: string): Promise<{ tensors: Map<string, StoredTensor>; unindexed: string[] }> {
  const weightMap = await readWeightMap(join(dir, INDEX_FILE))
  const shards = new Map<string, Map<string, StoredTensor>>()
  for (const [key, shard] of weightMap) {
    if (shards.has(shard)) continue
    const path = join(dir, shard)
    if (!(await exists(path))) {
      throw new KelixError('CHECKPOINT_FILE_MISSING', `named by ${INDEX_FILE} (for ${key}) but not found in ${dir}`, {
        file: shard,
      })
    }
    shards.set(shard, (await readSafetensorsHeader(path)).tensors)
  }
  const tensors = new Map<string, StoredTensor>()
  for (const [key, shard] of weightMap) {
    const tensor = shards.get(shard)?.get(key)
    if (tensor === undefined)
      throw indexInvalid(`weight_map puts ${key} in ${shard}, which has no such tensor`, INDEX_FILE)
    tensors.set(key, tensor)
  }
  const unindexed = [...shards.values()].flatMap((inShard) => [...inShard.keys()]).filter((key) => !weightMap.has(key))
  return { tensors, unindexed: unindexed.sort(compareKeys) }
}

/** Without an index, the reference loader merges every `*.safetensors` file: so do we, refusing a key in two files. */
async function readUnindexed(dir: string): Promise<{ tensors: Map<string, StoredTensor>; unindexed: string[] }> {
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((entry) => !entry.isDirectory() && entry.name.endsWith('.safetensors'))
    .map((entry) => entry.name)
    .sort(compareKeys)
  if (names.length === 0) {
    throw new KelixError('CHECKPOINT_FILE_MISSING', `${dir} has neither ${INDEX_FILE} nor any *.safetensors file`)
  }
  const tensors = new Map<string, StoredTensor>()
  for (const name of names) {
    for (const [key, tensor] of (await readSafetensorsHeader(join(dir, name))).tensors) {
      const earlier = tensors.get(key)
      if (earlier !== undefined)
        throw indexInvalid(`tensor ${key} is in both ${basename(earlier.file)} and ${name}`, name)
      tensors.set(key, tensor)
    }
  }
  return { tensors, unindexed: [] }
}

/** The index's `weight_map` (key → shard file name), checked for shape. */
async function readWeightMap(path: string): Promise<Map<string, string>> {
  let index: unknown
  try {
    index = JSON.parse(await readFile(path, 'utf8'))
  } catch {
    throw indexInvalid('is not valid JSON', INDEX_FILE)
  }
  const weightMap = isJsonObject(index) ? index.weight_map : undefined
  if (!isJsonObject(weightMap)) throw indexInvalid('has no weight_map object', INDEX_FILE)
  const entries = Object.entries(weightMap)
  if (entries.length === 0) throw indexInvalid('weight_map is empty', INDEX_FILE)
  const shards = new Map<string, string>()
  for (const [key, shard] of entries) {
    // A plain name only: the index must not send the reader outside the directory.
    if (typeof shard !== 'string' || !isPlainFileName(shard)) {
      throw indexInvalid(
        `weight_map gives ${key} the shard ${JSON.stringify(shard)}, not a file name in the directory`,
        INDEX_FILE,
      )
    }
    shards.set(key, shard)
  }
  return shards
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

function isPlainFileName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !/[/\\]/.test(name)
}

function indexInvalid(detail: string, file: string): KelixError {
  return new KelixError('CHECKPOINT_INDEX_INVALID', detail, { file: file })
}

function optionInvalid(detail: string): KelixError {
  return new KelixError('CONVERT_OPTION_INVALID', detail)
}
