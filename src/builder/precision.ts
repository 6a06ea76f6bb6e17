/**
 * How the converter stores the LLM's weights: per family, since each trades
 * memory for accuracy differently (docs/model-format.md, "Precision").
 * fp32 everywhere is the default and builds the graphs exactly as before.
 */
import { QUANT_BLOCK, type QuantBits } from './quantize.js'

/** A MatMul weight: float32 `MatMul`, or `MatMulNBits` over 8- or 4-bit codes. */
export type WeightPrecision = 'fp32' | 'int8' | 'int4'
export type QuantizedPrecision = Exclude<WeightPrecision, 'fp32'>
/** The embedding table: float32, or float16 cast to float32 after the gather. */
export type EmbeddingPrecision = 'fp32' | 'fp16'

export const WEIGHT_PRECISIONS: readonly WeightPrecision[] = ['fp32', 'int8', 'int4']
export const EMBEDDING_PRECISIONS: readonly EmbeddingPrecision[] = ['fp32', 'fp16']

export interface Precision {
  /** The LLM's Linear layers (decoder.onnx: attention q/k/v/o, MLP w1/w2/w3). */
  linear: WeightPrecision
  /** The LM head (block_decoder.onnx, every vocabulary part). */
  lmHead: WeightPrecision
  /** The unified embedding table (decoder.onnx and block_decoder.onnx each hold one). */
  embedding: EmbeddingPrecision
}

export const FP32: Precision = { linear: 'fp32', lmHead: 'fp32', embedding: 'fp32' }

/**
 * MatMulNBits' `accuracy_level`: 4 lets ONNX Runtime quantize the activations
 * to int8 per block and multiply in integers. Measured on 2 cores (AVX-512
 * VNNI), it is the fastest at M = 1 and M = 32 for int4, and the only usable
 * one for int8, whose float levels (0, 1) dequantize the whole weight on every
 * call (docs/model-format.md has the table).
 */
export const ACCURACY_LEVEL = 4

/** The settings given, completed: the LM head defaults to int8 once the linears are quantized, else fp32. */
export function resolvePrecision(given: Partial<Precision> = {}): Precision {
  const linear = given.linear ?? 'fp32'
  return { linear, lmHead: given.lmHead ?? (linear === 'fp32' ? 'fp32' : 'int8'), embedding: given.embedding ?? 'fp32' }
}

export function isQuantized(p: WeightPrecision): p is QuantizedPrecision {
  return p !== 'fp32'
}

export function bitsOf(p: QuantizedPrecision): QuantBits {
  return p === 'int8' ? 8 : 4
}

/** config.json's `precision` section: absent when everything is fp32 (an export as before). */
export function precisionConfig(p: Precision): Record<string, unknown> | undefined {
  if (p.linear === 'fp32' && p.lmHead === 'fp32' && p.embedding === 'fp32') return undefined
  const quantized = isQuantized(p.linear) || isQuantized(p.lmHead)
  return {
    linear: p.linear,
    lm_head: p.lmHead,
    embedding: p.embedding,
    ...(quantized ? { block_size: QUANT_BLOCK, accuracy_level: ACCURACY_LEVEL } : {}),
  }
}
