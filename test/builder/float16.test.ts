/** float16 bits (the fp16 embedding table) against ONNX Runtime's own Cast. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import t from 'tap'
import { float16Bits } from '../../src/builder/float16.js'
import { GraphBuilder, int } from '../../src/builder/graph.js'

/** Deterministic values in [−spread, spread). */
function values(count: number, seed: number, spread: number): Float32Array {
  let state = seed >>> 0
  return Float32Array.from({ length: count }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return (state / 2 ** 32 - 0.5) * 2 * spread
  })
}

t.test("float16 bits are ONNX Runtime's Cast: nearest, ties to even, subnormals, overflow, signed zero", async (t) => {
  const special = [
    0,
    -0,
    1,
    -1,
    65504,
    65519.99,
    65520,
    1e6,
    -1e6,
    6.1035156e-5,
    5.96e-8,
    2.98e-8,
    2.99e-8,
    1e-9,
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    0.1,
    -0.3333,
    Infinity,
    -Infinity,
  ]
  const input = Float32Array.from([...special, ...values(4000, 11, 3), ...values(1000, 12, 1e-4)])
  const g = new GraphBuilder('cast')
  const x = g.input('x', 'float32', [input.length])
  g.output('half', 'float16', [input.length], g.op('Cast', [x], { to: int(10) }))
  const dir = await mkdtemp(join(tmpdir(), 'kelix-float16-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await g.finish(17, '').save(join(dir, 'cast.onnx'))
  const s = await ort.InferenceSession.create(join(dir, 'cast.onnx'))
  t.teardown(() => s.release())
  const expected = ((await s.run({ x: new ort.Tensor('float32', input, [input.length]) })).half as ort.Tensor)
    .data as Uint16Array
  const ours = float16Bits(input)
  const differing = Array.from(ours.keys()).filter((i) => ours[i] !== expected[i])
  t.same(
    differing.map((i) => [input[i], ours[i], expected[i]]),
    [],
    'every value rounds as Cast rounds',
  )
  const nan = float16Bits(Float32Array.of(NaN))[0] as number
  t.ok((nan & 0x7c00) === 0x7c00 && (nan & 0x3ff) !== 0, 'NaN stays NaN')
})
