/**
 * A small graph-building helper over the `onnx-proto` protobuf bindings.
 *
 * Nodes get generated, stable output names (`MatMul_12`), so a builder that
 * adds the same nodes in the same order writes byte-identical models.
 *
 * Weights are ONNX external data: `save()` writes the graph and, beside it,
 * one `<graph>.data` file holding every weight (subgraphs' included), each at
 * a page-aligned offset so ONNX Runtime can map it. The 2 GB protobuf limit
 * makes this necessary for a real model; the tiny model is written the same
 * way, so both load alike. Weights are produced while that file is written
 * (see tensor-data.ts): building a graph holds none of them. Weights are
 * float32, except an fp16 embedding table and MatMulNBits' quantized weights
 * (uint8 codes beside float32 scales).
 *
 * Nodes are in the default domain at the graph's opset, plus ONNX Runtime's
 * contrib domain `com.microsoft` (version 1) in a graph that uses one of its
 * operators (`msOp`); a graph without one imports only the default domain.
 */
import { open } from 'node:fs/promises'
import { basename } from 'node:path'
import onnxProto, { type onnx as proto } from 'onnx-proto'
import { elementCount, inMemory, type Elements, type TensorData } from './tensor-data.js'

const { onnx } = onnxProto

export type DType = 'float32' | 'float16' | 'uint8' | 'int64' | 'bool'
/** The element types a weight may be stored in as external data. */
export type StoredType = 'float32' | 'float16' | 'uint8'
/** A tensor dimension: a fixed size, or a symbolic name such as `batch`. */
export type Dim = number | string

export type AttrValue =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'ints'; value: readonly number[] }
  | { kind: 'string'; value: string }
  | { kind: 'graph'; value: proto.IGraphProto }

export const int = (value: number): AttrValue => ({ kind: 'int', value })
export const float = (value: number): AttrValue => ({ kind: 'float', value })
export const ints = (value: readonly number[]): AttrValue => ({ kind: 'ints', value })
export const str = (value: string): AttrValue => ({ kind: 'string', value })
/** A subgraph attribute (the branches of `If`): see `GraphBuilder.subgraph`. */
export const graph = (value: proto.IGraphProto): AttrValue => ({ kind: 'graph', value })

const ELEMENT_TYPE: Record<DType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  uint8: onnx.TensorProto.DataType.UINT8,
  int64: onnx.TensorProto.DataType.INT64,
  bool: onnx.TensorProto.DataType.BOOL,
}

type InlineData = Float32Array | BigInt64Array

const BYTES_PER_ELEMENT: Record<StoredType, number> = { float32: 4, float16: 2, uint8: 1 }

/** ONNX Runtime's contrib operator domain (MatMulNBits) and the version imported. */
const MS_DOMAIN = 'com.microsoft'
const MS_DOMAIN_VERSION = 1

/** Offsets of external weights are aligned to this (a page), so ONNX Runtime may map them instead of copying. */
const EXTERNAL_ALIGNMENT = 4096

/** A weight stored outside the protobuf: its initializer, whose location is filled in by `save()`. */
interface ExternalWeight {
  initializer: proto.ITensorProto
  data: TensorData<Elements>
  bytesPerElement: number
  /** Model parameters it holds (its elements, or the weights its packed codes encode; 0 for quantization scales). */
  parameters: number
}

/** What a graph shares with its subgraphs (`If` branches): names, the one data file, whether `com.microsoft` is used. */
interface Shared {
  counters: Map<string, number>
  external: ExternalWeight[]
  usesMsDomain: boolean
}

/** A graph whose nodes are all added, ready to be written with its weights. */
export interface BuiltGraph {
  /** Weights to write and their bytes, known before writing (for progress). */
  readonly weights: { count: number; bytes: number }
  save(path: string, onWeight?: WeightWritten): Promise<SavedGraph>
}

/** Called after each weight is written, with its bytes. */
export type WeightWritten = (bytes: number) => void

/** What `save()` wrote. */
export interface SavedGraph {
  /** Bytes of the graph file and of its external data file. */
  graphBytes: number
  dataBytes: number
  /** Model parameters written (a quantized weight counts the values its codes encode). */
  parameters: number
}

export class GraphBuilder {
  private readonly nodes: proto.INodeProto[] = []
  private readonly inputs: proto.IValueInfoProto[] = []
  private readonly outputs: proto.IValueInfoProto[] = []
  private readonly initializers: proto.ITensorProto[] = []

  /**
   * `shared` is shared with subgraphs: ONNX wants every name unique across a
   * graph and its subgraphs, their weights go to one data file, and the model
   * imports every domain any of them uses.
   */
  constructor(
    private readonly name: string,
    private readonly shared: Shared = { counters: new Map(), external: [], usesMsDomain: false },
  ) {}

  /**
   * A graph to nest inside this one (an `If` branch). It may read this graph's
   * values and initializers by name (outer scope), which passes them by reference.
   */
  subgraph(name: string): GraphBuilder {
    return new GraphBuilder(name, this.shared)
  }

  input(name: string, dtype: DType, dims: readonly Dim[]): string {
    this.inputs.push(valueInfo(name, dtype, dims))
    return name
  }

  /** Declares a graph output named `name` holding the value `from`. */
  output(name: string, dtype: DType, dims: readonly Dim[], from: string): void {
    if (from !== name) this.nodes.push({ opType: 'Identity', input: [from], output: [name], name })
    this.outputs.push(valueInfo(name, dtype, dims))
  }

  /** A float32 weight, stored as external data; its values are produced when the graph is saved. */
  weight(name: string, dims: readonly number[], data: Float32Array | TensorData): string {
    return this.storedWeight(name, 'float32', dims, data instanceof Float32Array ? inMemory(dims, data) : data)
  }

  /**
   * A weight stored as external data in `dtype`: float32 values, float16 bits
   * (`Uint16Array`) or bytes. `parameters` is what the summary counts (default
   * its elements).
   */
  storedWeight(
    name: string,
    dtype: StoredType,
    dims: readonly number[],
    data: TensorData<Elements>,
    parameters = elementCount(dims),
  ): string {
    if (data.dims.length !== dims.length || data.dims.some((d, i) => d !== dims[i])) {
      throw new Error(
        `weight ${name}: data of shape [${data.dims.join(', ')}] for a weight of shape [${dims.join(', ')}]`,
      )
    }
    const initializer: proto.ITensorProto = {
      name,
      dims: [...dims],
      dataType: ELEMENT_TYPE[dtype],
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    }
    this.initializers.push(initializer)
    this.shared.external.push({ initializer, data, bytesPerElement: BYTES_PER_ELEMENT[dtype], parameters })
    return name
  }

  /** A weight another file holds whole (`SharedWeight`), read in place: nothing is written with this graph. */
  sharedWeight(weight: SharedWeight): string {
    this.initializers.push(weight.initializer())
    return weight.name
  }

  /** A 1-D int64 constant (shapes, axes, indices). */
  ints(values: readonly number[]): string {
    const data = BigInt64Array.from(values, (v) => BigInt(v))
    return this.tensor(this.fresh('const_i64'), 'int64', [values.length], data)
  }

  /** A 0-D int64 constant (an axis or an index where the operator wants a scalar). */
  intScalar(value: number): string {
    return this.tensor(this.fresh('const_i64'), 'int64', [], BigInt64Array.of(BigInt(value)))
  }

  /** A float32 constant of the given shape, every element `value` ([] is a scalar). */
  scalar(value: number, dims: readonly number[] = []): string {
    const size = dims.reduce((a, b) => a * b, 1)
    return this.tensor(this.fresh('const_f32'), 'float32', dims, new Float32Array(size).fill(value))
  }

  op(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}): string {
    return this.opN(opType, inputs, 1, attrs)[0] as string
  }

  opN(opType: string, inputs: readonly string[], outputCount: number, attrs: Record<string, AttrValue> = {}): string[] {
    const name = this.fresh(opType)
    const output = outputCount === 1 ? [name] : Array.from({ length: outputCount }, (_, i) => `${name}_${i}`)
    this.nodes.push({ opType, name, input: [...inputs], output, attribute: encodeAttributes(attrs) })
    return output
  }

  /** A one-output node of ONNX Runtime's `com.microsoft` domain (MatMulNBits); the model then imports the domain. */
  msOp(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}): string {
    return this.msOpN(opType, inputs, [true], attrs)[0] as string
  }

  /** A `com.microsoft` node with several outputs; `used[i]` false leaves optional output i unnamed (''). */
  msOpN(
    opType: string,
    inputs: readonly string[],
    used: readonly boolean[],
    attrs: Record<string, AttrValue> = {},
  ): string[] {
    const name = this.fresh(opType)
    const output = used.map((u, i) => (u ? (used.length === 1 ? name : `${name}_${i}`) : ''))
    this.nodes.push({ opType, domain: MS_DOMAIN, name, input: [...inputs], output, attribute: encodeAttributes(attrs) })
    this.shared.usesMsDomain = true
    return output
  }

  /** Ends the graph as an ONNX model (IR 8, default domain at `opset`), to be saved. */
  finish(opset: number, docString: string): BuiltGraph {
    const { external } = this.shared
    const bytes = external.reduce((sum, w) => sum + elementCount(w.data.dims) * w.bytesPerElement, 0)
    return {
      weights: { count: external.length, bytes },
      save: (path, onWeight) => this.save(path, opset, docString, onWeight),
    }
  }

  /**
   * The model as bytes, for a small helper graph that has no weights (its
   * tables are inputs): a graph with weights is only written by `save()`.
   */
  toBytes(opset: number): Uint8Array {
    if (this.shared.external.length > 0) throw new Error(`graph ${this.name} has weights: write it with save()`)
    return this.encode(opset, '')
  }

  /** A 1-D float32 constant stored in the graph itself (operator arguments such as Resize scales, not weights). */
  floats(values: readonly number[]): string {
    return this.tensor(this.fresh('const_f32'), 'float32', [values.length], Float32Array.from(values))
  }

  /**
   * Writes the model (IR 8, default domain at `opset`) to `path` and its weights
   * to `path`.data, one weight at a time, as each weight's producer yields them.
   */
  private async save(path: string, opset: number, docString = '', onWeight?: WeightWritten): Promise<SavedGraph> {
    const { bytes: dataBytes, parameters } = await writeExternalData(
      `${path}.data`,
      `${basename(path)}.data`,
      this.shared.external,
      onWeight,
    )
    const bytes = this.encode(opset, docString)
    const graphFile = await open(path, 'w')
    try {
      await graphFile.write(bytes)
    } finally {
      await graphFile.close()
    }
    return { graphBytes: bytes.length, dataBytes, parameters }
  }

  /** The model (IR 8, default domain at `opset`) as protobuf bytes; external weights carry only their location. */
  private encode(opset: number, docString: string): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'kelix-serve-builder',
      producerVersion: '1',
      docString,
      opsetImport: [
        { domain: '', version: opset },
        ...(this.shared.usesMsDomain ? [{ domain: MS_DOMAIN, version: MS_DOMAIN_VERSION }] : []),
      ],
      graph: this.toGraph(),
    })
    return onnx.ModelProto.encode(model).finish()
  }

  /** The graph itself, for a `graph` attribute when this is a subgraph. */
  toGraph(): proto.IGraphProto {
    return {
      name: this.name,
      node: this.nodes,
      input: this.inputs,
      output: this.outputs,
      initializer: this.initializers,
    }
  }

  private tensor(name: string, dtype: DType, dims: readonly number[], data: InlineData): string {
    const size = dims.reduce((a, b) => a * b, 1)
    if (size !== data.length) throw new Error(`tensor ${name}: ${data.length} values for shape [${dims.join(', ')}]`)
    // raw_data is little-endian, as on every platform ONNX Runtime supports.
    const rawData = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    this.initializers.push({ name, dims: [...dims], dataType: ELEMENT_TYPE[dtype], rawData })
    return name
  }

  private fresh(prefix: string): string {
    const n = this.shared.counters.get(prefix) ?? 0
    this.shared.counters.set(prefix, n + 1)
    return `${prefix}_${n}`
  }
}

function valueInfo(name: string, dtype: DType, dims: readonly Dim[]): proto.IValueInfoProto {
  const dim = dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }))
  return { name, type: { tensorType: { elemType: ELEMENT_TYPE[dtype], shape: { dim } } } }
}

function encodeAttributes(attrs: Record<string, AttrValue>): proto.IAttributeProto[] {
  const T = onnx.AttributeProto.AttributeType
  return Object.entries(attrs).map(([name, a]) => {
    switch (a.kind) {
      case 'int':
        return { name, type: T.INT, i: a.value }
      case 'float':
        return { name, type: T.FLOAT, f: a.value }
      case 'ints':
        return { name, type: T.INTS, ints: [...a.value] }
      case 'string':
        return { name, type: T.STRING, s: new TextEncoder().encode(a.value) }
      case 'graph':
        return { name, type: T.GRAPH, g: a.value }
    }
  })
}

/**
 * Writes `weights` into the file `path`, each at a page-aligned offset, one at a
 * time as its producer yields values, and points each initializer at its bytes
 * in `location` (the file's name as the graph refers to it).
 */
async function writeExternalData(
  path: string,
  location: string,
  weights: readonly ExternalWeight[],
  onWeight?: WeightWritten,
): Promise<{ bytes: number; parameters: number }> {
  const data = await open(path, 'w')
  let end = 0
  let parameters = 0
  try {
    for (const { initializer, data: tensor, bytesPerElement, parameters: held } of weights) {
      const offset = Math.ceil(end / EXTERNAL_ALIGNMENT) * EXTERNAL_ALIGNMENT
      const count = elementCount(tensor.dims)
      let written = 0
      await tensor.write(async (at, values) => {
        if (at < 0 || at + values.length > count)
          throw new Error(
            `weight ${String(initializer.name)}: values [${at}, ${at + values.length}) outside its ${count} elements`,
          )
        if (values.BYTES_PER_ELEMENT !== bytesPerElement)
          throw new Error(
            `weight ${String(initializer.name)}: ${values.BYTES_PER_ELEMENT}-byte values for ${bytesPerElement}-byte elements`,
          )
        await data.write(
          new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
          0,
          values.byteLength,
          offset + at * bytesPerElement,
        )
        written += values.length
      })
      if (written !== count)
        throw new Error(`weight ${String(initializer.name)}: ${written} values written for ${count} elements`)
      const length = count * bytesPerElement
      initializer.externalData = externalLocation(location, offset, length)
      end = offset + length
      parameters += held
      onWeight?.(length)
    }
  } finally {
    await data.close()
  }
  return { bytes: end, parameters }
}

function externalLocation(location: string, offset: number, length: number): proto.IStringStringEntryProto[] {
  return [
    { key: 'location', value: location },
    { key: 'offset', value: String(offset) },
    { key: 'length', value: String(length) },
  ]
}

/**
 * A weight several graphs read, written once into a file of its own: the
 * embedding table, which the LLM and the block decoder both gather from. ONNX
 * Runtime maps external data read-only, so however many sessions read the
 * file, the OS holds its pages once (measured: two sessions that gather every
 * row of a 1 GiB table hold 1.08 GB of it with one file, 2.13 GB with a copy
 * each; proportional set size). Saved
 * like a graph (`save(path)` writes the file at `path`), so a converter writes
 * and reports it with the graphs.
 */
export class SharedWeight implements BuiltGraph {
  readonly weights: { count: number; bytes: number }

  constructor(
    /** The file's name beside the graphs. */
    readonly file: string,
    readonly name: string,
    readonly dtype: StoredType,
    private readonly data: TensorData<Elements>,
  ) {
    this.weights = { count: 1, bytes: elementCount(data.dims) * BYTES_PER_ELEMENT[dtype] }
  }

  /** An initializer that reads the whole file: at offset 0, so it is known before the file is written. */
  initializer(): proto.ITensorProto {
    const { name, dtype, data } = this
    return {
      name,
      dims: [...data.dims],
      dataType: ELEMENT_TYPE[dtype],
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: externalLocation(this.file, 0, this.weights.bytes),
    }
  }

  async save(path: string, onWeight?: WeightWritten): Promise<SavedGraph> {
    if (basename(path) !== this.file)
      throw new Error(`the shared weight ${this.name} lives in ${this.file}, not ${basename(path)}`)
    const weight: ExternalWeight = {
      initializer: this.initializer(),
      data: this.data,
      bytesPerElement: BYTES_PER_ELEMENT[this.dtype],
      parameters: elementCount(this.data.dims),
    }
    const { bytes, parameters } = await writeExternalData(path, this.file, [weight], onWeight)
    return { graphBytes: 0, dataBytes: bytes, parameters }
  }
}
