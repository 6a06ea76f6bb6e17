/**
 * The DiT checkpoint's config.json (`SanaConfig`, the reference's pydantic
 * dump, model class `SanaModel`) as the converter reads it: the sizes of the
 * graph, and the flags whose other values the graph does not implement,
 * refused by name. A field the file does not write keeps its `SanaConfig`
 * default (muse/config/model_config.py), as the reference loads it.
 */
import type { Checkpoint } from './checkpoint.js'
import { parseJsonObject } from './json-object.js'
import { KelixError } from '../errors/kelix-error.js'

export const SANA_CONFIG_FILE = 'config.json'

/** The null caption (a persistent buffer): its row count is the condition length. */
export const NULL_CAPTION_KEY = 'y_embedder.y_embedding'

/** What the DiT graph needs from config.json. */
export interface SanaDitConfig {
  /** Latent side S (latents are [B, inChannels, S, S]). */
  inputSize: number
  patchSize: number
  inChannels: number
  /** Channels of `final_layer.linear` per patch position: 2·inChannels with `pred_sigma` (the graph keeps the first inChannels). */
  outChannels: number
  hidden: number
  depth: number
  /** Heads of the softmax cross-attention (`num_heads`). */
  crossHeads: number
  /** Head width of the linear self-attention; its heads are hidden / linearHeadDim. */
  linearHeadDim: number
  /** GLUMBConv inner width: `int(hidden · mlp_ratio)` (the inverted conv writes twice this). */
  ffnInner: number
  /** Width of the caption space (`y_embedder.y_proj` input, null caption rows). */
  captionChannels: number
  /** `diffusion_connector` input width (the LLM's hidden size); null without a connector (the condition is then in caption space). */
  connectorChannels: number | null
  /** 2-D sin-cos position table added to the patches (`use_pe`), with its `pe_interpolation`; null when off. */
  positionEmbedding: { interpolation: number } | null
  /** `attention_y_norm` (RMSNorm on the projected caption) and its eps; null when `y_norm` is off. */
  yNorm: { eps: number } | null
  /** Image side / latent side, as the demo sizes its latents (the graph does not read it). */
  vaeDownsampleRate: number
}

/**
 * Every `SanaConfig` field and its default. Fields that change nothing the
 * graph computes (training, VAE and text-encoder names, initialisation) are
 * listed so that they are known, and not read.
 */
export const SANA_CONFIG_DEFAULTS: Readonly<Record<string, unknown>> = {
  model_class: 'SanaModel',
  input_size: 32,
  patch_size: 1,
  in_channels: 32,
  hidden_size: 2240,
  depth: 20,
  num_heads: 20,
  mlp_ratio: 2.5,
  caption_channels: 2304,
  // Stale in the published files: the condition length is the null caption's row count.
  model_max_length: 300,
  attn_type: 'linear',
  cross_attn_type: 'flash',
  linear_head_dim: 32,
  qk_norm: false,
  cross_norm: false,
  use_cross_attn_rope: false,
  use_position_scale: false,
  cross_attn_x_norm: false,
  ffn_type: 'glumbconv',
  mlp_acts: ['silu', 'silu', null],
  pred_sigma: false,
  learn_sigma: false,
  use_pe: false,
  pe_interpolation: 1.0,
  y_norm: true,
  y_norm_scale_factor: 0.01,
  norm_eps: 1e-5,
  class_dropout_prob: 0.1,
  drop_path: 0.0,
  vae_type: 'AutoencoderDC',
  vae_pretrained: 'mit-han-lab/dc-ae-f32c32-sana-1.1-diffusers',
  vae_downsample_rate: 32,
  text_encoder_name: 'google/gemma-2-2b-it',
  y_embedding_init_method: 'randn',
  use_connector: false,
  connector_channels: null,
}

type Json = Record<string, unknown>

/** Parses and checks the text of a DiT checkpoint's config.json. */
export function parseSanaConfig(text: string, file = SANA_CONFIG_FILE): SanaDitConfig {
  const invalid = (detail: string) => new KelixError('CHECKPOINT_CONFIG_INVALID', detail, { file: file })
  const json = parseJsonObject(text, invalid)
  if (json.__class__ !== 'SanaConfig') {
    throw invalid(
      `__class__ is ${JSON.stringify(json.__class__)}, expected "SanaConfig" (the Kelix-DiT checkpoint; the LLM checkpoint says "KeyeARConfig")`,
    )
  }
  // The reference's config classes forbid extra fields: an unknown one is a newer architecture flag.
  const unknown = Object.keys(json).filter((k) => k !== '__class__' && !(k in SANA_CONFIG_DEFAULTS))
  if (unknown.length > 0)
    throw invalid(
      `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}: not a SanaConfig field the converter knows, so not implemented`,
    )
  const f = reader({ ...SANA_CONFIG_DEFAULTS, ...json }, invalid)

  refuseUnimplemented(f)
  const hidden = f.int('hidden_size')
  const config: SanaDitConfig = {
    inputSize: f.int('input_size'),
    patchSize: f.int('patch_size'),
    inChannels: f.int('in_channels'),
    outChannels: f.bool('pred_sigma') ? 2 * f.int('in_channels') : f.int('in_channels'),
    hidden,
    depth: f.int('depth'),
    crossHeads: f.int('num_heads'),
    linearHeadDim: f.int('linear_head_dim'),
    // Python's int(hidden_size * mlp_ratio): a float64 product, truncated.
    ffnInner: Math.trunc(hidden * f.positive('mlp_ratio')),
    captionChannels: f.int('caption_channels'),
    connectorChannels: f.bool('use_connector') ? f.int('connector_channels') : null,
    positionEmbedding: f.bool('use_pe') ? { interpolation: f.positive('pe_interpolation') } : null,
    yNorm: f.bool('y_norm') ? { eps: f.positive('norm_eps') } : null,
    vaeDownsampleRate: f.int('vae_downsample_rate'),
  }
  const problems = relationProblems(config)
  if (problems.length > 0) throw invalid(problems.join('; '))
  return config
}

/**
 * The condition length: the rows of the null caption `y_embedder.y_embedding`
 * ([L, caption_channels]), read from the checkpoint's header. config.json's
 * `model_max_length` is not used: the published one is stale (300 for 720 rows).
 */
export function sanaConditionLength(checkpoint: Checkpoint): number {
  const { shape } = checkpoint.tensor(NULL_CAPTION_KEY)
  const rows = shape[0]
  if (shape.length !== 2 || rows === undefined || rows < 1) {
    throw new KelixError(
      'CHECKPOINT_SHAPE_MISMATCH',
      `${NULL_CAPTION_KEY} has shape [${shape.join(', ')}], expected [condition length, caption_channels]`,
    )
  }
  return rows
}

type Reader = ReturnType<typeof reader>

/** Flags whose other values change the architecture in ways the graph does not implement. */
function refuseUnimplemented(f: Reader): void {
  f.expect('model_class', 'SanaModel')
  f.expect('attn_type', 'linear')
  // SanaMSBlock builds the same softmax MultiHeadCrossAttention whatever this says.
  f.expectOneOf('cross_attn_type', ['flash', 'linear'])
  f.expect('qk_norm', false)
  f.expect('cross_norm', false)
  f.expect('use_cross_attn_rope', false)
  f.expect('cross_attn_x_norm', false)
  // Scales only the positions of the cross-attention RoPE, which is refused above: a no-op here.
  f.bool('use_position_scale')
  f.expect('ffn_type', 'glumbconv')
  f.expectList('mlp_acts', ['silu', 'silu', null])
  // SanaModel never reads learn_sigma (pred_sigma decides the output channels).
  f.bool('learn_sigma')
}

function relationProblems(c: SanaDitConfig): string[] {
  const problems: string[] = []
  const need = (ok: boolean, message: string) => {
    if (!ok) problems.push(message)
  }
  need(c.hidden % c.crossHeads === 0, `hidden_size (${c.hidden}) is not a multiple of num_heads (${c.crossHeads})`)
  need(
    c.hidden % c.linearHeadDim === 0,
    `hidden_size (${c.hidden}) is not a multiple of linear_head_dim (${c.linearHeadDim})`,
  )
  need(c.inputSize % c.patchSize === 0, `input_size (${c.inputSize}) is not a multiple of patch_size (${c.patchSize})`)
  need(c.ffnInner > 0, `hidden_size · mlp_ratio gives an FFN width of ${c.ffnInner}`)
  // The sin-cos table splits the width in two axes of sin and cos halves.
  need(
    c.positionEmbedding === null || c.hidden % 4 === 0,
    `use_pe needs hidden_size (${c.hidden}) to be a multiple of 4`,
  )
  return problems
}

/** Typed field access that names the field and the value it found. */
function reader(obj: Json, invalid: (detail: string) => KelixError) {
  const show = (name: string) => `${name} is ${JSON.stringify(obj[name])}`
  const notImplemented = (name: string, wanted: string) =>
    invalid(`${show(name)}: not implemented (the converter implements only ${wanted})`)
  const number = (name: string, ok: (n: number) => boolean, what: string): number => {
    const value = obj[name]
    if (typeof value !== 'number' || !ok(value)) throw invalid(`${show(name)}, expected ${what}`)
    return value
  }
  return {
    int: (name: string) => number(name, (n) => Number.isInteger(n) && n > 0, 'a positive integer'),
    positive: (name: string) => number(name, (n) => Number.isFinite(n) && n > 0, 'a positive number'),
    bool(name: string): boolean {
      const value = obj[name]
      if (typeof value !== 'boolean') throw invalid(`${show(name)}, expected true or false`)
      return value
    },
    expect(name: string, wanted: unknown) {
      if (obj[name] !== wanted) throw notImplemented(name, JSON.stringify(wanted))
    },
    expectOneOf(name: string, wanted: readonly unknown[]) {
      if (!wanted.includes(obj[name])) throw notImplemented(name, wanted.map((w) => JSON.stringify(w)).join(' or '))
    },
    expectList(name: string, wanted: readonly unknown[]) {
      const value = obj[name]
      if (!Array.isArray(value) || value.length !== wanted.length || value.some((v, i) => v !== wanted[i]))
        throw notImplemented(name, JSON.stringify(wanted))
    },
  }
}
