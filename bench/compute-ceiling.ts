/**
 * The compute ceiling of a batched decode step on this machine. Past a few
 * rows a step stops being bound by reading the weights and becomes bound by
 * multiplying them, so the most tokens/s a batch can give is
 *
 *   kernel GFLOP/s at batch 32 ÷ FLOPs per token (2 per weight a token multiplies)
 *
 * The kernel is the LLM's FFN up projection ([hidden → intermediate], its
 * commonest linear shape) written as the converter writes it at the precision
 * (layers.ts `linear`: MatMul at fp32, MatMulNBits at int8/int4), alone in a
 * graph, 32 rows, on the engine's threads. Attention's FLOPs (a few percent at
 * short contexts) are left out, so the ceiling is an upper bound.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import type { KelixCheckpointSizes } from '../src/builder/kelix-checkpoint-layout.js'
import { DECODER_OPSET } from '../src/builder/decoder.js'
import { GraphBuilder } from '../src/builder/graph.js'
import { linear } from '../src/builder/layers.js'
import type { WeightPrecision } from '../src/builder/precision.js'
import { inMemory, type TensorData } from '../src/builder/tensor-data.js'
import type { Weights } from '../src/builder/weights.js'
import { modelSessionOptions } from '../src/engine/model.js'
import { median } from './stats.js'

const ROWS = 32

export interface ComputeCeiling {
  kernel: string
  rows: number
  gflops: number
  /** Weights a decode token multiplies: the LLM's linears, the LM head's text rows, the block decoder's linears. */
  weightsPerToken: number
  tokensPerSecond: number
}

export function weightsPerToken(s: KelixCheckpointSizes): number {
  const q = s.heads * s.headDim
  const kv = s.kvHeads * s.headDim
  const llm = s.layers * (s.hidden * (q + 2 * kv) + q * s.hidden + 3 * s.hidden * s.intermediate)
  const b = s.blockDecoder
  const blockDecoder = 2 * s.hidden * b.dModel + b.layers * (4 * b.dModel * b.dModel + 3 * b.dModel * b.feedForward)
  return llm + s.textVocab * s.hidden + blockDecoder
}

export async function measureComputeCeiling(
  s: KelixCheckpointSizes,
  precision: WeightPrecision,
  threads: number,
): Promise<ComputeCeiling> {
  const k = s.hidden
  const n = s.intermediate
  const dir = await mkdtemp(join(tmpdir(), 'kelix-ceiling-'))
  try {
    const g = new GraphBuilder('ceiling')
    const x = g.input('x', 'float32', ['rows', k])
    const random = (dims: number[]): TensorData =>
      inMemory(
        dims,
        Float32Array.from(
          { length: (dims[0] as number) * (dims[1] as number) },
          (_, i) => Math.sin(i * 12.9898) * 0.05,
        ),
      )
    const weights: Weights = {
      linear: (_key, inDim, outDim) => random([inDim, outDim]),
      storedLinear: (_key, inDim, outDim) => random([outDim, inDim]),
      bias: (_key, dim) => inMemory([dim], new Float32Array(dim)),
      scale: (_key, dim) => inMemory([dim], new Float32Array(dim).fill(1)),
    }
    g.output('y', 'float32', ['rows', n], linear({ g, w: weights, linearPrecision: precision }, 'up', x, k, n))
    const path = join(dir, 'ceiling.onnx')
    await g.finish(DECODER_OPSET, 'compute ceiling').save(path)
    const session = await ort.InferenceSession.create(path, modelSessionOptions({ intraOpThreads: threads }))
    try {
      const feeds = { x: new ort.Tensor('float32', new Float32Array(ROWS * k).fill(0.01), [ROWS, k]) }
      for (let i = 0; i < 3; i++) await session.run(feeds)
      const ms: number[] = []
      const started = performance.now()
      while (ms.length < 10 || (ms.length < 200 && performance.now() - started < 2000)) {
        const t = performance.now()
        await session.run(feeds)
        ms.push(performance.now() - t)
      }
      const gflops = (2 * ROWS * k * n) / (median(ms) / 1000) / 1e9
      const perToken = weightsPerToken(s)
      return {
        kernel: `${precision === 'fp32' ? 'MatMul' : `MatMulNBits ${precision}`} [${ROWS}×${k}]·[${k}×${n}]`,
        rows: ROWS,
        gflops,
        weightsPerToken: perToken,
        tokensPerSecond: (gflops * 1e9) / (2 * perToken),
      }
    } finally {
      await session.release()
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
