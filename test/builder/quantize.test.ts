/**
 * The block quantizer against ONNX Runtime itself: MatMulNBits on the codes
 * and scales it writes equals a float MatMul on the weights dequantized here
 * from those same bytes, for int4 and int8, with K a multiple of the block and
 * not; the served accuracy level within its rounding bound; the streamed
 * quantizer equals the one-shot one.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import t, { type Test } from 'tap'
import { GraphBuilder, int, type BuiltGraph } from '../../src/builder/graph.js'
import { matMulNBits } from '../../src/builder/layers.js'
import { ACCURACY_LEVEL } from '../../src/builder/precision.js'
import { blockQuantized, dequantize, QUANT_BLOCK, quantizeRows } from '../../src/builder/quantize.js'
import { collect, inMemory, type TensorData } from '../../src/builder/tensor-data.js'
import { maxAbsDiff } from '../helpers/tensors.js'

/** Deterministic values in [−spread, spread), with some blocks scaled up and one all zero, so scales differ. */
function values(count: number, seed: number, spread = 1): Float32Array {
  let state = seed >>> 0
  return Float32Array.from({ length: count }, (_, i) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    const block = Math.floor(i / QUANT_BLOCK)
    return block === 2 ? 0 : (state / 2 ** 32 - 0.5) * 2 * spread * (block % 3 === 1 ? 10 : 1)
  })
}

/** The [K, N] transpose of a row-major [N, K] matrix: MatMul's weight layout. */
function transposed(w: Float32Array, n: number, k: number): Float32Array {
  const out = new Float32Array(n * k)
  for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) out[c * n + r] = w[r * k + c] as number
  return out
}

async function session(t: Test, built: BuiltGraph): Promise<ort.InferenceSession> {
  const dir = await mkdtemp(join(tmpdir(), 'kelix-quantize-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await built.save(join(dir, 'model.onnx'))
  const s = await ort.InferenceSession.create(join(dir, 'model.onnx'), { intraOpNumThreads: 1 })
  t.teardown(() => s.release())
  return s
}

const SHAPES: ReadonlyArray<readonly [number, number]> = [
  [64, 16],
  [96, 1],
  [256, 7],
  [40, 24],
  [100, 33],
]
/**
 * Two float32 sums of the same K products, in different orders, differ by at
 * most 2·K·u·Σ|aᵢ·wᵢ| (u = 2⁻²⁴, the standard bound on summation error).
 */
function summationBounds(a: Float32Array, w: Float32Array, m: number, n: number, k: number): Float64Array {
  const bounds = new Float64Array(m * n)
  for (let r = 0; r < m; r++) {
    for (let c = 0; c < n; c++) {
      let magnitude = 0
      for (let i = 0; i < k; i++) magnitude += Math.abs((a[r * k + i] as number) * (w[c * k + i] as number))
      bounds[r * n + c] = 2 * k * 2 ** -24 * magnitude
    }
  }
  return bounds
}

for (const bits of [4, 8] as const) {
  t.test(
    `int${bits}: MatMulNBits on the codes equals a float MatMul on the weights dequantized from them`,
    async (t) => {
      for (const [k, n] of SHAPES) {
        const w = values(n * k, k * 31 + n)
        const q = blockQuantized(inMemory([n, k], w), bits)
        const g = new GraphBuilder('nbits')
        const x = g.input('x', 'float32', ['m', k])
        const codes = g.storedWeight('codes', 'uint8', q.codes.dims, q.codes)
        const scales = g.storedWeight('scales', 'float32', q.scales.dims, q.scales)
        // accuracy_level 1: float32 activations, so the product itself is exact up to summation order.
        g.output(
          'nbits',
          'float32',
          ['m', n],
          g.msOp('MatMulNBits', [x, codes, scales], {
            K: int(k),
            N: int(n),
            bits: int(bits),
            block_size: int(QUANT_BLOCK),
            accuracy_level: int(1),
          }),
        )
        const dequantized = dequantize(quantizeRows(w, k, bits), n, k, bits)
        g.output(
          'float',
          'float32',
          ['m', n],
          g.op('MatMul', [x, g.weight('dequantized', [k, n], transposed(dequantized, n, k))]),
        )
        const s = await session(t, g.finish(17, ''))
        for (const m of [1, 5]) {
          const a = values(m * k, m, 2)
          const out = await s.run({ x: new ort.Tensor('float32', a, [m, k]) })
          const [nbits, float] = [
            (out.nbits as ort.Tensor).data as Float32Array,
            (out.float as ort.Tensor).data as Float32Array,
          ]
          t.same((out.nbits as ort.Tensor).dims, [m, n])
          const bounds = summationBounds(a, dequantized, m, n, k)
          const worst = Math.max(
            ...Array.from(nbits, (y, i) => Math.abs(y - (float[i] as number)) / (bounds[i] as number)),
          )
          t.ok(
            worst <= 1,
            `K ${k}${k % QUANT_BLOCK === 0 ? '' : ' (padded)'}, N ${n}, M ${m}: max |diff| ${(worst * 100).toFixed(1)}% of the float32 summation bound (${maxAbsDiff(nbits, float).toExponential(1)})`,
          )
        }
      }
    },
  )
}

t.test(
  `the served accuracy level (${ACCURACY_LEVEL}: int8 activations) stays within the activation rounding bound`,
  async (t) => {
    const [k, n, m] = [100, 33, 4]
    for (const bits of [4, 8] as const) {
      const w = values(n * k, 5)
      const g = new GraphBuilder('served')
      const x = g.input('x', 'float32', ['m', k])
      g.output('y', 'float32', ['m', n], matMulNBits(g, x, 'w', inMemory([n, k], w), bits === 8 ? 'int8' : 'int4'))
      const s = await session(t, g.finish(17, ''))
      const a = values(m * k, 9, 2)
      const y = ((await s.run({ x: new ort.Tensor('float32', a, [m, k]) })).y as ort.Tensor).data as Float32Array
      const dequantized = dequantize(quantizeRows(w, k, bits), n, k, bits)
      let worst = 0
      for (let r = 0; r < m; r++) {
        for (let c = 0; c < n; c++) {
          // Each block of a row of x rounded to int8 (step max|a|/127) moves the sum by at most step/2 · Σ|w| over the block.
          let exact = 0
          let bound = 1e-5
          for (let b = 0; b < k; b += QUANT_BLOCK) {
            const end = Math.min(k, b + QUANT_BLOCK)
            let amax = 0
            let wsum = 0
            for (let i = b; i < end; i++) {
              amax = Math.max(amax, Math.abs(a[r * k + i] as number))
              wsum += Math.abs(dequantized[c * k + i] as number)
              exact += (a[r * k + i] as number) * (dequantized[c * k + i] as number)
            }
            bound += (amax / 127 / 2) * wsum
          }
          const diff = Math.abs((y[r * n + c] as number) - exact)
          worst = Math.max(worst, diff / bound)
        }
      }
      t.ok(worst <= 1, `int${bits}: the largest error is ${(worst * 100).toFixed(0)}% of its bound`)
    }
  },
)

t.test(
  'quantization: each value within one step of its block, the extreme exact, zero blocks and padding at the zero code',
  async (t) => {
    const [n, k] = [3, 70]
    const w = values(n * k, 1)
    for (const bits of [4, 8] as const) {
      const q = quantizeRows(w, k, bits)
      const back = dequantize(q, n, k, bits)
      const blocks = Math.ceil(k / QUANT_BLOCK)
      for (let r = 0; r < n; r++) {
        for (let b = 0; b < blocks; b++) {
          const scale = Math.abs(q.scales[r * blocks + b] as number)
          const idx = Array.from(
            { length: Math.min(k, (b + 1) * QUANT_BLOCK) - b * QUANT_BLOCK },
            (_, i) => r * k + b * QUANT_BLOCK + i,
          )
          const extreme = idx.reduce((best, i) => (Math.abs(w[i] as number) > Math.abs(w[best] as number) ? i : best))
          t.ok(
            idx.every((i) => Math.abs((w[i] as number) - (back[i] as number)) <= scale * 1.0001),
            `int${bits} row ${r} block ${b}: within one step`,
          )
          t.ok(
            Math.abs((back[extreme] as number) - (w[extreme] as number)) <= Math.abs(w[extreme] as number) * 1e-6,
            `int${bits} row ${r} block ${b}: the extreme is exact`,
          )
        }
      }
      t.equal(q.scales[2], 0, `int${bits}: an all-zero block (row 0's third) has scale 0`)
      const zero = bits === 4 ? 0x88 : 0x80
      const blob = (QUANT_BLOCK * bits) / 8
      const lastBlock = q.codes.subarray(blocks * blob - blob, blocks * blob)
      const used = ((k % QUANT_BLOCK) * bits) / 8
      t.ok(
        lastBlock.subarray(used).every((byte) => byte === zero),
        `int${bits}: the padding of the last block is the zero code`,
      )
    }
  },
)

t.test(
  'streamed in pieces of whole rows, the quantizer writes what it writes at once, codes first or scales first',
  async (t) => {
    const [n, k] = [10, 96]
    const w = values(n * k, 3)
    const reads: number[] = []
    const inPieces: TensorData = {
      dims: [n, k],
      async write(put) {
        reads.push(1)
        for (let r = 0; r < n; r += 3) await put(r * k, w.subarray(r * k, Math.min(n, r + 3) * k))
      },
    }
    for (const bits of [4, 8] as const) {
      const whole = quantizeRows(w, k, bits)
      reads.length = 0
      const streamed = blockQuantized(inPieces, bits)
      t.same(await collectBytes(streamed.codes), whole.codes, `int${bits}: codes`)
      t.same(await collect(streamed.scales), whole.scales, `int${bits}: scales`)
      t.equal(reads.length, 1, `int${bits}: codes then scales read the source once`)
      const scalesFirst = blockQuantized(inPieces, bits)
      t.same(await collect(scalesFirst.scales), whole.scales, `int${bits}: scales alone`)
    }
    const ragged: TensorData = { dims: [n, k], write: (put) => put(0, w.subarray(0, k + 5)) }
    await t.rejects(collectBytes(blockQuantized(ragged, 4).codes), /not whole rows/)
  },
)

async function collectBytes(tensor: TensorData<Uint8Array>): Promise<Uint8Array> {
  const out = new Uint8Array(tensor.dims.reduce((a, b) => a * b, 1))
  await tensor.write(async (at, bytes) => out.set(bytes, at))
  return out
}
