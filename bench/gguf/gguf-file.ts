/**
 * A GGUF (version 3) file, written for the llama.cpp side of the benchmark:
 *
 *   header and metadata      @huggingface/gguf's serializeGgufMetadata
 *   tensor infos             name, dims (ggml order: ne[0] is the row length), type, offset
 *   padding to 32, then each tensor's data at its offset, padded to 32
 *
 * The tensors are produced one at a time (a real-size model does not fit in
 * memory twice) into `path`.tmp, renamed onto `path` once complete, so a run
 * cut short never leaves a file that looks whole.
 */
import { open, rename, rm } from 'node:fs/promises'
import { GGUFValueType, serializeGgufMetadata, type GGUFTypedMetadata } from '@huggingface/gguf'
import { GGML_TYPE_ID, ggmlBytes, type GgmlType } from './ggml-blocks.js'

const ALIGNMENT = 32

export type MetadataEntry = GGUFTypedMetadata[string]

/** Metadata entries by key, in the order they are written. */
export type GgufMetadata = Record<string, MetadataEntry>

export interface GgufTensor {
  name: string
  /** ggml order: ne[0] first (for a [out, in] weight: [in, out]). */
  dims: readonly number[]
  type: GgmlType
  /** The tensor's bytes, encoded as `type` (exactly ggmlBytes(type, elements)). */
  data: () => Promise<Uint8Array>
}

const pad = (n: number) => Math.ceil(n / ALIGNMENT) * ALIGNMENT

export async function writeGguf(
  path: string,
  metadata: GgufMetadata,
  tensors: readonly GgufTensor[],
): Promise<{ bytes: number }> {
  const sizes = tensors.map((t) =>
    ggmlBytes(
      t.type,
      t.dims.reduce((a, b) => a * b, 1),
    ),
  )
  const offsets: number[] = []
  let dataBytes = 0
  for (const size of sizes) {
    offsets.push(dataBytes)
    dataBytes = pad(dataBytes + size)
  }
  // Alignment 1: the library pads to the alignment after the metadata, but the tensor infos come before the padding.
  const head = serializeGgufMetadata(
    {
      version: { value: 3, type: GGUFValueType.UINT32 },
      tensor_count: { value: BigInt(tensors.length), type: GGUFValueType.UINT64 },
      kv_count: { value: BigInt(Object.keys(metadata).length), type: GGUFValueType.UINT64 },
      ...metadata,
    } as GGUFTypedMetadata,
    { alignment: 1 },
  )
  const infos = concat(tensors.map((t, i) => tensorInfo(t, offsets[i] as number)))
  const dataStart = pad(head.length + infos.length)
  const tmp = `${path}.tmp`
  const file = await open(tmp, 'w')
  try {
    await file.write(head, 0, head.length, 0)
    await file.write(infos, 0, infos.length, head.length)
    for (const [i, t] of tensors.entries()) {
      const data = await t.data()
      if (data.length !== sizes[i])
        throw new Error(
          `GGUF tensor ${t.name}: ${data.length} bytes produced, ${sizes[i]} expected for ${t.type} [${t.dims.join(', ')}]`,
        )
      await file.write(data, 0, data.length, dataStart + (offsets[i] as number))
    }
    // The last tensor's padding: the file ends on the alignment, as llama.cpp writes it.
    await file.truncate(dataStart + dataBytes)
    await file.close()
    await rename(tmp, path)
  } catch (err) {
    await file.close().catch(() => undefined)
    await rm(tmp, { force: true })
    throw err
  }
  return { bytes: dataStart + dataBytes }
}

function tensorInfo(t: GgufTensor, offset: number): Uint8Array {
  const name = new TextEncoder().encode(t.name)
  const bytes = new Uint8Array(8 + name.length + 4 + 8 * t.dims.length + 4 + 8)
  const view = new DataView(bytes.buffer)
  view.setBigUint64(0, BigInt(name.length), true)
  bytes.set(name, 8)
  let at = 8 + name.length
  view.setUint32(at, t.dims.length, true)
  at += 4
  for (const d of t.dims) {
    view.setBigUint64(at, BigInt(d), true)
    at += 8
  }
  view.setUint32(at, GGML_TYPE_ID[t.type], true)
  view.setBigUint64(at + 4, BigInt(offset), true)
  return bytes
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** Typed metadata values, as the GGUF value types name them. */
export const gguf = {
  u32: (value: number): MetadataEntry => ({ value, type: GGUFValueType.UINT32 }),
  f32: (value: number): MetadataEntry => ({ value, type: GGUFValueType.FLOAT32 }),
  bool: (value: boolean): MetadataEntry => ({ value, type: GGUFValueType.BOOL }),
  string: (value: string): MetadataEntry => ({ value, type: GGUFValueType.STRING }),
  strings: (value: string[]): MetadataEntry => ({ value, type: GGUFValueType.ARRAY, subType: GGUFValueType.STRING }),
  i32s: (value: number[]): MetadataEntry => ({ value, type: GGUFValueType.ARRAY, subType: GGUFValueType.INT32 }),
}
