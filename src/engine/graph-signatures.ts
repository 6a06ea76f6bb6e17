/**
 * What each graph of the model format must declare, derived from config.json.
 * A symbolic dimension (`batch`) accepts any size; a number must match exactly.
 */
import type { ImageGenerationKelixConfig, KelixConfig } from './model-config.js'

export type ValueType = 'float32' | 'float16' | 'int64' | 'bool'

export interface ValueSpec {
  name: string
  type: ValueType
  /** Fixed sizes as numbers, free sizes as names (documentation only). */
  shape: Array<number | string>
}

export interface GraphSignature {
  file: string
  inputs: ValueSpec[]
  outputs: ValueSpec[]
  /** Outputs a graph may declare; the engine uses them when present. */
  optionalOutputs: ValueSpec[]
  /** Sets of outputs of which the graph must declare at least one whole set, named for the error. */
  oneOf?: Array<{ label: string; outputs: ValueSpec[] }>
}

export const MODEL_FILES = {
  config: 'config.json',
  tokenizer: 'tokenizer.json',
  tokenizerConfig: 'tokenizer_config.json',
  visualTokenizer: 'visual_tokenizer.onnx',
  decoder: 'decoder.onnx',
  blockDecoder: 'block_decoder.onnx',
  /** The embedding table decoder.onnx and block_decoder.onnx both read (external data of both). */
  embeddings: 'embed_tokens.data',
  dit: 'dit.onnx',
  vaeDecoder: 'vae_decoder.onnx',
} as const

export function kvName(kind: 'past' | 'present' | 'delta', layer: number, part: 'key' | 'value'): string {
  const prefix = kind === 'past' ? 'past_key_values' : kind === 'present' ? 'present' : 'present_delta'
  return `${prefix}.${layer}.${part}`
}

export function decoderSignature(c: KelixConfig): GraphSignature {
  const {
    num_layers: layers,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    hidden_size: hidden,
    kv_dtype: kvType,
  } = c.llm
  const perLayer = (kind: 'past' | 'present' | 'delta', length: string): ValueSpec[] =>
    Array.from({ length: layers }, (_, i) =>
      (['key', 'value'] as const).map((part) => ({
        name: kvName(kind, i, part),
        type: kvType,
        shape: ['batch', kvHeads, length, headDim],
      })),
    ).flat()
  return {
    file: MODEL_FILES.decoder,
    inputs: [
      { name: 'block_ids', type: 'int64', shape: ['batch', 'seq', c.block_size] },
      { name: 'attention_mask', type: 'int64', shape: ['batch', 'total'] },
      { name: 'position_ids', type: 'int64', shape: ['batch', 'seq'] },
      ...perLayer('past', 'past'),
    ],
    outputs: [{ name: 'hidden_states', type: 'float32', shape: ['batch', 'seq', hidden] }],
    optionalOutputs: [...perLayer('delta', 'seq'), ...perLayer('present', 'total')],
    oneOf: [
      { label: 'present_delta.{i}.key/value (new entries only)', outputs: perLayer('delta', 'seq') },
      { label: 'present.{i}.key/value (whole cache)', outputs: perLayer('present', 'total') },
    ],
  }
}

/**
 * `vocabParts`: the graph declares `vocab_part` (see vocab-parts.ts), so its logits
 * hold one part, whose width depends on the value fed; without it (the older form)
 * they cover the whole vocabulary.
 */
export function blockDecoderSignature(c: KelixConfig, vocabParts: boolean): GraphSignature {
  const part: ValueSpec[] = vocabParts ? [{ name: 'vocab_part', type: 'int64', shape: [] }] : []
  return {
    file: MODEL_FILES.blockDecoder,
    inputs: [
      { name: 'hidden_state', type: 'float32', shape: ['batch', c.llm.hidden_size] },
      { name: 'block_ids', type: 'int64', shape: ['batch', 'slots'] },
      ...part,
    ],
    outputs: [{ name: 'logits', type: 'float32', shape: ['batch', vocabParts ? 'part_vocab' : c.vocab.vocab_size] }],
    optionalOutputs: [],
  }
}

export function visualTokenizerSignature(c: KelixConfig): GraphSignature {
  const patch = c.vision.patch_size
  return {
    file: MODEL_FILES.visualTokenizer,
    inputs: [
      { name: 'pixel_patches', type: 'float32', shape: ['patches', 3 * patch * patch] },
      { name: 'grid_hw', type: 'int64', shape: [2] },
    ],
    outputs: [{ name: 'codes', type: 'int64', shape: ['positions', c.vocab.num_codebooks] }],
    optionalOutputs: [],
  }
}

export function ditSignature(c: ImageGenerationKelixConfig): GraphSignature {
  const { latent_channels: channels, latent_size: side, condition_length: length } = c.image_generation
  const latents = ['batch', channels, side, side]
  return {
    file: MODEL_FILES.dit,
    inputs: [
      { name: 'latents', type: 'float32', shape: latents },
      { name: 'timestep', type: 'float32', shape: ['batch'] },
      { name: 'condition', type: 'float32', shape: ['batch', length, c.llm.hidden_size] },
      { name: 'condition_mask', type: 'int64', shape: ['batch', length] },
      { name: 'unconditional', type: 'bool', shape: ['batch'] },
    ],
    outputs: [{ name: 'velocity', type: 'float32', shape: latents }],
    optionalOutputs: [],
  }
}

export function vaeDecoderSignature(c: ImageGenerationKelixConfig): GraphSignature {
  const { latent_channels: channels, latent_size: side, image_size: size } = c.image_generation
  return {
    file: MODEL_FILES.vaeDecoder,
    inputs: [{ name: 'latents', type: 'float32', shape: ['batch', channels, side, side] }],
    outputs: [{ name: 'image', type: 'float32', shape: ['batch', 3, size, size] }],
    optionalOutputs: [],
  }
}

/** What a loaded session declares about one value. */
export interface DeclaredValue {
  name: string
  type: string
  shape: ReadonlyArray<number | string>
}

/** Every way `declared` departs from `signature`, in words that name the value. */
export function signatureProblems(
  signature: GraphSignature,
  declared: { inputs: readonly DeclaredValue[]; outputs: readonly DeclaredValue[] },
): string[] {
  const problems: string[] = []
  const check = (role: 'input' | 'output', specs: ValueSpec[], values: readonly DeclaredValue[], required: boolean) => {
    for (const spec of specs) {
      const value = values.find((v) => v.name === spec.name)
      if (value === undefined) {
        if (required) problems.push(`missing ${role} ${spec.name}`)
        continue
      }
      if (value.type !== spec.type) problems.push(`${role} ${spec.name} has type ${value.type}, expected ${spec.type}`)
      if (value.shape.length !== spec.shape.length) {
        problems.push(
          `${role} ${spec.name} has rank ${value.shape.length} [${value.shape.join(', ')}], expected [${spec.shape.join(', ')}]`,
        )
        continue
      }
      spec.shape.forEach((dim, i) => {
        const got = value.shape[i]
        if (typeof dim === 'number' && typeof got === 'number' && got !== dim) {
          problems.push(
            `${role} ${spec.name} has size ${got} at axis ${i}, expected ${dim} ([${value.shape.join(', ')}] vs [${spec.shape.join(', ')}])`,
          )
        }
      })
    }
  }
  check('input', signature.inputs, declared.inputs, true)
  check('output', signature.outputs, declared.outputs, true)
  check('output', signature.optionalOutputs, declared.outputs, false)
  const sets = signature.oneOf ?? []
  const names = new Set(declared.outputs.map((v) => v.name))
  if (sets.length > 0 && !sets.some((set) => set.outputs.every((spec) => names.has(spec.name)))) {
    problems.push(
      `declares no complete set of cache outputs: expected ${sets.map((set) => set.label).join(' or ')} for every layer`,
    )
  }
  for (const value of declared.inputs) {
    if (!signature.inputs.some((s) => s.name === value.name))
      problems.push(`unexpected input ${value.name} (the engine would not feed it)`)
  }
  return problems
}
