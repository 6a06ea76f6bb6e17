/**
 * `config.json` of a Kelix model directory: every size the engine needs.
 * The schema below is the contract; `docs/model-format.md` explains each field.
 */
import { Ajv, type JSONSchemaType } from 'ajv'
import { KelixError } from '../errors/kelix-error.js'

export interface SpecialTokens {
  im_start: number
  im_end: number
  vision_start: number
  vision_end: number
  image_pad: number
  eob: number
  mm_pos_start: number
  mm_pos_end: number
}

export interface KelixConfig {
  format: 'kelix-onnx'
  format_version: 1
  name: string
  vocab: {
    text_vocab_size: number
    num_codebooks: number
    codebook_size: number
    visual_id_offset: number
    vocab_size: number
  }
  special_tokens: SpecialTokens
  block_size: number
  vision: {
    patch_size: number
    merge_size: number
    min_positions: number
    max_positions: number
    low_detail_max_positions: number
    image_mean: number[]
    image_std: number[]
    /** The text of an image row's marker, `{row}` (0-based) and `{cols}` filled in; default `{row},{cols}`. */
    row_marker?: string
  }
  llm: {
    num_layers: number
    hidden_size: number
    num_attention_heads: number
    num_key_value_heads: number
    head_dim: number
    max_position_embeddings: number
    rope_theta: number
    rms_norm_eps: number
    kv_dtype: 'float32' | 'float16'
  }
  block_decoder: {
    hidden_size: number
    num_heads: number
    intermediate_size: number
  }
  generation: {
    max_new_tokens: number
    temperature: number
    top_p: number
    top_k: number
  }
  /** Absent in an export without the image decoder (dit.onnx, vae_decoder.onnx): chat only. */
  image_generation?: ImageGenerationConfig
}

/** The config of an export that generates images. */
export type ImageGenerationKelixConfig = KelixConfig & { image_generation: ImageGenerationConfig }

export function generatesImages(c: KelixConfig): c is ImageGenerationKelixConfig {
  return c.image_generation !== undefined
}

/** Text-to-image: the generated grid, the DiT's condition and latents, the sampler, the output size. */
export interface ImageGenerationConfig {
  /** Generated image positions per side (rows and columns of the grid the LLM writes). */
  grid: number
  /** The condition hidden states (the span <|vision_start|> … <|vision_end|>) are zero-padded to this length. */
  condition_length: number
  latent_channels: number
  /** Latent side; latents are [latent_channels, latent_size, latent_size]. */
  latent_size: number
  /** Output image side in pixels. */
  image_size: number
  /** Euler steps of the flow-matching sampler. */
  steps: number
  /** Timestep shift σ' = shift·σ / (1 + (shift − 1)·σ). */
  shift: number
  /** The default classifier-free guidance scale (a request may set its own); 1.0 runs one DiT pass per step. */
  guidance: number
  /** DiT widths (informational). */
  dit: {
    hidden_size: number
    num_layers: number
    num_heads: number
    patch_size: number
    intermediate_size: number
  }
}

const positiveInt = { type: 'integer', minimum: 1 } as const
const tokenId = { type: 'integer', minimum: 0 } as const
const rgb = { type: 'array', items: { type: 'number' }, minItems: 3, maxItems: 3 } as const

const schema: JSONSchemaType<KelixConfig> = {
  type: 'object',
  required: [
    'format',
    'format_version',
    'name',
    'vocab',
    'special_tokens',
    'block_size',
    'vision',
    'llm',
    'block_decoder',
    'generation',
  ],
  properties: {
    format: { type: 'string', const: 'kelix-onnx' },
    format_version: { type: 'integer', const: 1 },
    name: { type: 'string', minLength: 1 },
    vocab: {
      type: 'object',
      required: ['text_vocab_size', 'num_codebooks', 'codebook_size', 'visual_id_offset', 'vocab_size'],
      properties: {
        text_vocab_size: positiveInt,
        num_codebooks: positiveInt,
        codebook_size: positiveInt,
        visual_id_offset: positiveInt,
        vocab_size: positiveInt,
      },
    },
    special_tokens: {
      type: 'object',
      required: ['im_start', 'im_end', 'vision_start', 'vision_end', 'image_pad', 'eob', 'mm_pos_start', 'mm_pos_end'],
      properties: {
        im_start: tokenId,
        im_end: tokenId,
        vision_start: tokenId,
        vision_end: tokenId,
        image_pad: tokenId,
        eob: tokenId,
        mm_pos_start: tokenId,
        mm_pos_end: tokenId,
      },
    },
    block_size: positiveInt,
    vision: {
      type: 'object',
      required: [
        'patch_size',
        'merge_size',
        'min_positions',
        'max_positions',
        'low_detail_max_positions',
        'image_mean',
        'image_std',
      ],
      properties: {
        patch_size: positiveInt,
        merge_size: positiveInt,
        min_positions: positiveInt,
        max_positions: positiveInt,
        low_detail_max_positions: positiveInt,
        image_mean: rgb,
        image_std: rgb,
        row_marker: { type: 'string', nullable: true, pattern: '\\{row\\}' },
      },
    },
    llm: {
      type: 'object',
      required: [
        'num_layers',
        'hidden_size',
        'num_attention_heads',
        'num_key_value_heads',
        'head_dim',
        'max_position_embeddings',
        'rope_theta',
        'rms_norm_eps',
        'kv_dtype',
      ],
      properties: {
        num_layers: positiveInt,
        hidden_size: positiveInt,
        num_attention_heads: positiveInt,
        num_key_value_heads: positiveInt,
        head_dim: positiveInt,
        max_position_embeddings: positiveInt,
        rope_theta: { type: 'number', exclusiveMinimum: 0 },
        rms_norm_eps: { type: 'number', exclusiveMinimum: 0 },
        kv_dtype: { type: 'string', enum: ['float32', 'float16'] },
      },
    },
    block_decoder: {
      type: 'object',
      required: ['hidden_size', 'num_heads', 'intermediate_size'],
      properties: { hidden_size: positiveInt, num_heads: positiveInt, intermediate_size: positiveInt },
    },
    generation: {
      type: 'object',
      required: ['max_new_tokens', 'temperature', 'top_p', 'top_k'],
      properties: {
        max_new_tokens: positiveInt,
        temperature: { type: 'number', minimum: 0 },
        top_p: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
        top_k: { type: 'integer', minimum: 0 },
      },
    },
    image_generation: {
      type: 'object',
      nullable: true,
      required: [
        'grid',
        'condition_length',
        'latent_channels',
        'latent_size',
        'image_size',
        'steps',
        'shift',
        'guidance',
        'dit',
      ],
      properties: {
        grid: positiveInt,
        condition_length: positiveInt,
        latent_channels: positiveInt,
        latent_size: positiveInt,
        image_size: positiveInt,
        steps: positiveInt,
        shift: { type: 'number', exclusiveMinimum: 0 },
        guidance: { type: 'number', minimum: 0 },
        dit: {
          type: 'object',
          required: ['hidden_size', 'num_layers', 'num_heads', 'patch_size', 'intermediate_size'],
          properties: {
            hidden_size: positiveInt,
            num_layers: positiveInt,
            num_heads: positiveInt,
            patch_size: positiveInt,
            intermediate_size: positiveInt,
          },
        },
      },
    },
  },
}

const validate = new Ajv({ allErrors: true }).compile(schema)

/** Parses and checks `config.json` text; throws MODEL_CONFIG_INVALID naming every problem. */
export function parseConfig(text: string, file = 'config.json'): KelixConfig {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new KelixError('MODEL_CONFIG_INVALID', `not valid JSON (${(err as Error).message})`, { file: file })
  }
  if (!validate(json)) {
    const problems = (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`)
    throw new KelixError('MODEL_CONFIG_INVALID', problems.join('; '), { file: file })
  }
  const problems = consistencyProblems(json)
  if (problems.length > 0) throw new KelixError('MODEL_CONFIG_INVALID', problems.join('; '), { file: file })
  return json
}

/** Relations between fields that a JSON schema cannot state. */
function consistencyProblems(c: KelixConfig): string[] {
  const problems: string[] = []
  const { vocab, llm, vision } = c
  if (vocab.visual_id_offset < vocab.text_vocab_size) {
    problems.push(
      `vocab.visual_id_offset (${vocab.visual_id_offset}) overlaps the text vocabulary (${vocab.text_vocab_size})`,
    )
  }
  const expectedVocab = vocab.visual_id_offset + vocab.num_codebooks * vocab.codebook_size
  if (vocab.vocab_size !== expectedVocab) {
    problems.push(
      `vocab.vocab_size is ${vocab.vocab_size}, expected visual_id_offset + num_codebooks * codebook_size = ${expectedVocab}`,
    )
  }
  if (c.block_size !== vocab.num_codebooks + 1) {
    problems.push(`block_size is ${c.block_size}, expected num_codebooks + 1 = ${vocab.num_codebooks + 1}`)
  }
  for (const [name, id] of Object.entries(c.special_tokens)) {
    if (id >= vocab.text_vocab_size) problems.push(`special_tokens.${name} (${id}) is outside the text vocabulary`)
  }
  if (llm.num_attention_heads % llm.num_key_value_heads !== 0) {
    problems.push(
      `llm.num_attention_heads (${llm.num_attention_heads}) is not a multiple of llm.num_key_value_heads (${llm.num_key_value_heads})`,
    )
  }
  if (llm.head_dim % 2 !== 0) problems.push(`llm.head_dim (${llm.head_dim}) must be even for RoPE`)
  if (vision.min_positions > vision.max_positions) {
    problems.push(
      `vision.min_positions (${vision.min_positions}) exceeds vision.max_positions (${vision.max_positions})`,
    )
  }
  if (
    vision.low_detail_max_positions > vision.max_positions ||
    vision.low_detail_max_positions < vision.min_positions
  ) {
    problems.push(
      `vision.low_detail_max_positions (${vision.low_detail_max_positions}) must lie within [min_positions, max_positions]`,
    )
  }
  if (vision.image_std.some((s) => s <= 0)) problems.push('vision.image_std must be positive')
  return c.image_generation === undefined ? problems : [...problems, ...imageGenerationProblems(c.image_generation)]
}

function imageGenerationProblems(ig: ImageGenerationConfig): string[] {
  const problems: string[] = []
  const shortestSpan = minimumImageSpan(ig.grid)
  if (ig.condition_length < shortestSpan) {
    problems.push(
      `image_generation.condition_length (${ig.condition_length}) is shorter than the span of a ${ig.grid}×${ig.grid} grid (at least 2 + grid·(grid + 3) = ${shortestSpan})`,
    )
  }
  return problems
}

/**
 * A lower bound on the generated span <|vision_start|> … <|vision_end|> of a grid×grid image: each row
 * marker is <|mm_pos_start|>, at least one text id, <|mm_pos_end|>. The exact length depends on how the
 * tokenizer splits "row,cols" (see `imageSpanLength` in src/engine/image-gen).
 */
export function minimumImageSpan(grid: number): number {
  return 2 + grid * (grid + 3)
}

/** Pixels covered by one LLM position along each side (patch size times merge size). */
export function positionPixels(c: KelixConfig): number {
  return c.vision.patch_size * c.vision.merge_size
}
