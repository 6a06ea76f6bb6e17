/**
 * A small graph-building helper over the `onnx-proto` protobuf bindings.
 *
 * Nodes get generated, stable output names (`MatMul_12`), so a builder that
 * adds the same nodes in the same order writes byte-identical models.
 */
import onnxProto, { type onnx as proto } from 'onnx-proto'

const { onnx } = onnxProto

export type DType = 'float32' | 'int64' | 'bool'
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
  int64: onnx.TensorProto.DataType.INT64,
  bool: onnx.TensorProto.DataType.BOOL,
}

type TensorData = Float32Array | BigInt64Array

export class GraphBuilder {
  private readonly nodes: proto.INodeProto[] = []
  private readonly inputs: proto.IValueInfoProto[] = []
  private readonly outputs: proto.IValueInfoProto[] = []
  private readonly initializers: proto.ITensorProto[] = []

  /** `counters` is shared with subgraphs: ONNX wants every name unique across a graph and its subgraphs. */
  constructor(
    private readonly name: string,
    private readonly counters = new Map<string, number>(),
  ) {}

  /**
   * A graph to nest inside this one (an `If` branch). It may read this graph's
   * values and initializers by name (outer scope), which passes them by reference.
   */
  subgraph(name: string): GraphBuilder {
    return new GraphBuilder(name, this.counters)
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

  weight(name: string, dims: readonly number[], data: Float32Array): string {
    return this.tensor(name, 'float32', dims, data)
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

  /** Serialises the graph as an ONNX model (IR 8, default domain at `opset`). */
  toBytes(opset: number, docString = ''): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'kelix-serve-builder',
      producerVersion: '1',
      docString,
      opsetImport: [{ domain: '', version: opset }],
      graph: this.toGraph(),
    })
    return onnx.ModelProto.encode(model).finish()
  }

  /** The graph itself, for a `graph` attribute when this is a subgraph. */
  toGraph(): proto.IGraphProto {
    return { name: this.name, node: this.nodes, input: this.inputs, output: this.outputs, initializer: this.initializers }
  }

  private tensor(name: string, dtype: DType, dims: readonly number[], data: TensorData): string {
    const size = dims.reduce((a, b) => a * b, 1)
    if (size !== data.length) throw new Error(`tensor ${name}: ${data.length} values for shape [${dims.join(', ')}]`)
    // raw_data is little-endian, as on every platform ONNX Runtime supports.
    const rawData = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    this.initializers.push({ name, dims: [...dims], dataType: ELEMENT_TYPE[dtype], rawData })
    return name
  }

  private fresh(prefix: string): string {
    const n = this.counters.get(prefix) ?? 0
    this.counters.set(prefix, n + 1)
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
