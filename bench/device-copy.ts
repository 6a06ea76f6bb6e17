/**
 * Memory bandwidth of an execution provider's device, measured by a copy
 * kernel that runs on it: a graph makes an N-float tensor on the device from
 * a one-float input, multiplies it by a scale `chain` times (each Mul reads N
 * floats and writes N) and returns only its maximum, so nothing but two
 * scalars crosses between host and device. The difference between a long and
 * a short chain, per Mul, is one copy's time; the rate is bytes read per
 * second, as bandwidth.ts reports the CPU's copy loop.
 *
 * GB are 10^9 bytes.
 */
import ort from 'onnxruntime-node'
import { GraphBuilder, ints } from '../src/builder/graph.js'
import type { ExecutionProvider } from '../src/engine/providers.js'
import { median } from './stats.js'

export interface DeviceCopy {
  provider: ExecutionProvider
  /** Floats per tensor copied. */
  elements: number
  /** Bytes read per second by one Mul, GB/s (median of trials). */
  copyReadGBps: number
}

const SHORT = 1
const LONG = 9

function chainGraph(elements: number, chain: number): Uint8Array {
  const g = new GraphBuilder('device_copy')
  const seed = g.input('seed', 'float32', [1])
  const scale = g.input('scale', 'float32', [1])
  let x = g.op('Expand', [seed, g.ints([elements])])
  for (let i = 0; i < chain; i++) x = g.op('Mul', [x, scale])
  g.output('max', 'float32', [], g.op('ReduceMax', [x], { keepdims: { kind: 'int', value: 0 }, axes: ints([0]) }))
  return g.toBytes(17)
}

export async function measureDeviceCopy(
  provider: ExecutionProvider,
  opts: { elements?: number; trials?: number } = {},
): Promise<DeviceCopy> {
  const elements = opts.elements ?? 256 * 1024 * 1024
  // No graph optimizations: a chain of Muls by one input scale must stay a chain.
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [provider],
    graphOptimizationLevel: 'disabled',
    logSeverityLevel: 3,
  }
  const [short, long] = await Promise.all([
    ort.InferenceSession.create(chainGraph(elements, SHORT), options),
    ort.InferenceSession.create(chainGraph(elements, LONG), options),
  ])
  const feeds = {
    seed: new ort.Tensor('float32', Float32Array.of(1), [1]),
    scale: new ort.Tensor('float32', Float32Array.of(1.0000001), [1]),
  }
  const time = async (session: ort.InferenceSession) => {
    const start = performance.now()
    await session.run(feeds)
    return performance.now() - start
  }
  try {
    await time(short)
    await time(long)
    const perMulMs: number[] = []
    for (let t = 0; t < (opts.trials ?? 5); t++)
      perMulMs.push(((await time(long)) - (await time(short))) / (LONG - SHORT))
    return { provider, elements, copyReadGBps: (elements * 4) / (median(perMulMs) / 1000) / 1e9 }
  } finally {
    await Promise.all([short.release(), long.release()])
  }
}
