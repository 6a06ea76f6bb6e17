/**
 * What the understanding graphs are built from: the served config.json plus
 * the inner sizes only the graphs need (the converter reads both from the
 * checkpoint's `KeyeARConfig`; see src/convert/keye-config.ts).
 */
import type { KelixConfig } from '../engine/model-config.js'

export interface VisionEncoderSpec {
  /** ViT width (1152 in Kelix-Tok). */
  width: number
  layers: number
  heads: number
  /** MLP width (4304). */
  mlp: number
  /** Side of the learned square position table (27). */
  positionTable: number
  layerNormEps: number
  /** Base of the ViT's 2-D RoPE (10000). */
  ropeTheta: number
}

export interface QuantizerSpec {
  /** Width of each sub-vector and codebook entry (128). */
  codeDim: number
  /** Width of the frozen tables each codebook is projected from (4096). */
  tableWidth: number
  /** Rows of each frozen table: every sub-codebook's codes (65536). */
  tableRows: number
}

export interface BlockDecoderSpec {
  /** Causal transformer layers (1 in Kelix). */
  layers: number
  /** Rows of the learned slot table in the checkpoint (65537); only `block_size` are used. */
  positionRows: number
}

export interface Architecture {
  config: KelixConfig
  /** SwiGLU width of the LLM (12288). */
  llmIntermediateSize: number
  vision: VisionEncoderSpec
  quantizer: QuantizerSpec
  blockDecoder: BlockDecoderSpec
}
