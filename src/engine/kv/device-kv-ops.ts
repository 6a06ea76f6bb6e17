/**
 * The cache operations a device-resident KV store needs, each one small ONNX
 * graph run on the model's GPU provider with its outputs left on the device
 * (`preferredOutputLocation: 'gpu-buffer'`), so that cache tensors go from
 * one session to the next without visiting the host.
 *
 * Every operation applies to all of a model's cache tensors at once (one
 * input and one output per layer and part, index `2·layer + part`), so a
 * decode step makes one extra call, not one per layer. Only small control
 * tensors (row indices, slot masks, pads) are uploaded.
 *
 *   write    Where(mask[R,1,S,1], delta[R,h,1,d], past[R,h,S,d])   one new entry per row, at its own slot
 *   pad      Pad(x, pads)                                          more slots (or rows) of zeros
 *   rows     Gather(x, rows, axis 0)                               keep or reorder rows
 *   slice    Slice(x, starts, ends, axes [0, 2])                   rows' first slots; part of a delta
 *   concat   Concat(a, b, axis 0 | 2)                              rows after rows; slots after slots
 *   read     Identity(x) to the host                               for checks only
 *
 * ONNX Runtime's WebGPU provider crashes the process on some empty tensors (a
 * MatMul whose inner dimension is 0), so callers never pass tensors with a
 * zero-sized axis.
 */
import ort from 'onnxruntime-node'
import { GraphBuilder, type DType } from '../../builder/graph.js'
import type { ExecutionProvider } from '../providers.js'

export interface CacheTensorShape {
  /** Cache tensors per model: 2 per layer. */
  tensors: number
  heads: number
  dim: number
  dtype: 'float32' | 'float16'
}

type Tensors = readonly ort.Tensor[]

const OPSET = 17

export class DeviceKvOps {
  private constructor(
    private readonly shape: CacheTensorShape,
    private readonly sessions: {
      write: ort.InferenceSession
      pad: ort.InferenceSession
      rows: ort.InferenceSession
      slice: ort.InferenceSession
      concatRows: ort.InferenceSession
      concatSlots: ort.InferenceSession
      read: ort.InferenceSession
    },
  ) {}

  static async create(shape: CacheTensorShape, provider: ExecutionProvider): Promise<DeviceKvOps> {
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: [provider],
      preferredOutputLocation: 'gpu-buffer',
      logSeverityLevel: 3,
    }
    const open = (bytes: Uint8Array) => ort.InferenceSession.create(bytes, options)
    const [write, pad, rows, slice, concatRows, concatSlots, read] = await Promise.all([
      open(
        opGraph(shape, 'write', (g, x) => g.op('Where', ['mask', `delta${x.index}`, x.name]), [['mask', 'bool']], true),
      ),
      open(opGraph(shape, 'pad', (g, x) => g.op('Pad', [x.name, 'pads']), [['pads', 'int64']])),
      open(opGraph(shape, 'rows', (g, x) => g.op('Gather', [x.name, 'rows']), [['rows', 'int64']])),
      open(
        opGraph(shape, 'slice', (g, x) => g.op('Slice', [x.name, 'starts', 'ends', g.ints([0, 2])]), [
          ['starts', 'int64'],
          ['ends', 'int64'],
        ]),
      ),
      open(concatGraph(shape, 0)),
      open(concatGraph(shape, 2)),
      // Reading a device tensor's data directly kills the process (onnxruntime-node 1.30): copy it through a graph.
      ort.InferenceSession.create(
        opGraph(shape, 'read', (g, x) => g.op('Identity', [x.name]), []),
        {
          ...options,
          preferredOutputLocation: 'cpu',
        },
      ),
    ])
    return new DeviceKvOps(shape, { write, pad, rows, slice, concatRows, concatSlots, read })
  }

  /** `past` with each row's entry of `delta` ([R,h,1,d]) written at slot `at[r]`. */
  write(past: Tensors, delta: Tensors, at: readonly number[]): Promise<ort.Tensor[]> {
    const slots = past[0]?.dims[2] ?? 0
    const mask = new Uint8Array(at.length * slots)
    at.forEach((slot, r) => (mask[r * slots + slot] = 1))
    return this.run(this.sessions.write, past, {
      mask: new ort.Tensor('bool', mask, [at.length, 1, slots, 1]),
      ...Object.fromEntries(delta.map((t, i) => [`delta${i}`, t])),
    })
  }

  /** `x` with `slots` zero slots after its own, and `rows` zero rows after its own. */
  pad(x: Tensors, slots: number, rows = 0): Promise<ort.Tensor[]> {
    const pads = BigInt64Array.of(0n, 0n, 0n, 0n, BigInt(rows), 0n, BigInt(slots), 0n)
    return this.run(this.sessions.pad, x, { pads: new ort.Tensor('int64', pads, [8]) })
  }

  /** The rows `rows` of `x`, in that order. */
  rows(x: Tensors, rows: readonly number[]): Promise<ort.Tensor[]> {
    const indices = BigInt64Array.from(rows, (r) => BigInt(r))
    return this.run(this.sessions.rows, x, { rows: new ort.Tensor('int64', indices, [rows.length]) })
  }

  /** Rows [rows[0], rows[1]) of `x`, slots [slots[0], slots[1]). */
  slice(x: Tensors, rows: readonly [number, number], slots: readonly [number, number]): Promise<ort.Tensor[]> {
    return this.run(this.sessions.slice, x, {
      starts: new ort.Tensor('int64', BigInt64Array.of(BigInt(rows[0]), BigInt(slots[0])), [2]),
      ends: new ort.Tensor('int64', BigInt64Array.of(BigInt(rows[1]), BigInt(slots[1])), [2]),
    })
  }

  /** `a`'s rows then `b`'s (equal slots), or `a`'s slots then `b`'s (equal rows). */
  concat(a: Tensors, b: Tensors, axis: 'rows' | 'slots'): Promise<ort.Tensor[]> {
    const session = axis === 'rows' ? this.sessions.concatRows : this.sessions.concatSlots
    return this.run(session, a, Object.fromEntries(b.map((t, i) => [`b${i}`, t])))
  }

  /** Host copies of device tensors (for checks: a decode step never reads the cache back). */
  read(x: Tensors): Promise<ort.Tensor[]> {
    return this.run(this.sessions.read, x, {})
  }

  /** Zero cache tensors of `rows` rows and `slots` slots, uploaded from the host (a row with nothing cached yet). */
  zeros(rows: number, slots: number): ort.Tensor[] {
    const { heads, dim, dtype } = this.shape
    const size = rows * heads * slots * dim
    return Array.from(
      { length: this.shape.tensors },
      () =>
        new ort.Tensor(dtype, dtype === 'float16' ? new Uint16Array(size) : new Float32Array(size), [
          rows,
          heads,
          slots,
          dim,
        ]),
    )
  }

  async release(): Promise<void> {
    await Promise.all(Object.values(this.sessions).map((s) => s.release()))
  }

  private async run(
    session: ort.InferenceSession,
    x: Tensors,
    controls: Record<string, ort.Tensor>,
  ): Promise<ort.Tensor[]> {
    const feeds: Record<string, ort.Tensor> = { ...controls }
    x.forEach((t, i) => (feeds[`x${i}`] = t))
    const out = await session.run(feeds)
    return x.map((_, i) => out[`y${i}`] as ort.Tensor)
  }
}

/**
 * A graph applying `op` to each cache tensor `x{i}` → `y{i}`, with shared
 * control inputs; `withDelta` adds a `delta{i}` input per tensor.
 */
function opGraph(
  shape: CacheTensorShape,
  name: string,
  op: (g: GraphBuilder, x: { name: string; index: number }) => string,
  controls: ReadonlyArray<readonly [string, DType]>,
  withDelta = false,
): Uint8Array {
  const g = new GraphBuilder(`kv_${name}`)
  const dims = (rows: string, slots: string) => [rows, shape.heads, slots, shape.dim]
  for (const [control, dtype] of controls) g.input(control, dtype, control === 'mask' ? ['R', 1, 'S', 1] : ['N'])
  for (let i = 0; i < shape.tensors; i++) {
    const x = g.input(`x${i}`, shape.dtype, dims('R', 'S'))
    if (withDelta) g.input(`delta${i}`, shape.dtype, dims('R', 'T'))
    g.output(`y${i}`, shape.dtype, dims('R_out', 'S_out'), op(g, { name: x, index: i }))
  }
  return g.toBytes(OPSET)
}

/** `y{i} = Concat(x{i}, b{i})` along `axis`. */
function concatGraph(shape: CacheTensorShape, axis: 0 | 2): Uint8Array {
  const g = new GraphBuilder(`kv_concat_${axis}`)
  const dims = (rows: string, slots: string) => [rows, shape.heads, slots, shape.dim]
  for (let i = 0; i < shape.tensors; i++) {
    const a = g.input(`x${i}`, shape.dtype, dims('R', 'S'))
    const b = g.input(`b${i}`, shape.dtype, dims(axis === 0 ? 'Rb' : 'R', axis === 2 ? 'Sb' : 'S'))
    g.output(
      `y${i}`,
      shape.dtype,
      dims('R_out', 'S_out'),
      g.op('Concat', [a, b], { axis: { kind: 'int', value: axis } }),
    )
  }
  return g.toBytes(OPSET)
}
