/**
 * The VAE's config.json (diffusers `AutoencoderDC`, as `save_pretrained`
 * writes it) as the converter reads it: what the decoder graph needs, with
 * every value the graph does not implement refused by name. Encoder fields
 * are ignored: serving only decodes.
 *
 * diffusers' decoder has one stage per entry of `decoder_block_out_channels`;
 * stage 0 is on the image side, the last on the latent side, and decoding
 * runs them from the last to stage 0 (see dc-ae-decoder.ts).
 */
import { parseJsonObject } from './json-object.js'
import { KelixError } from '../errors/kelix-error.js'

export const DC_AE_CONFIG_FILE = 'config.json'

export type DcAeBlockType = 'ResBlock' | 'EfficientViTBlock'
/** diffusers' `get_activation` names, lower-cased, `swish` read as `silu`. */
export type DcAeActivation = 'silu' | 'relu' | 'gelu' | 'mish'
export type DcAeUpsampleBlockType = 'interpolate' | 'pixel_shuffle'
/** The only norm implemented (diffusers also has `batch_norm` and `layer_norm`). */
export type DcAeNormType = 'rms_norm'

/** One decoder stage: entry i of every `decoder_*` list. */
export interface DcAeStage {
  /** `decoder_block_out_channels[i]`: the width of this stage's blocks. */
  channels: number
  /** `decoder_layers_per_block[i]`: blocks in this stage (0 also drops the stage's upsampling). */
  layers: number
  blockType: DcAeBlockType
  /** `decoder_qkv_multiscales[i]`: kernel sizes of the extra q/k/v aggregations (EfficientViT stages only). */
  qkvMultiscales: number[]
  normType: DcAeNormType
  /** Used by ResBlocks only (diffusers' EfficientViTBlock takes no activation). */
  actFn: DcAeActivation
}

export interface DcAeConfig {
  /** `in_channels`: the image's channels (3). */
  imageChannels: number
  latentChannels: number
  attentionHeadDim: number
  /** Index 0 = image side. */
  stages: DcAeStage[]
  upsampleBlockType: DcAeUpsampleBlockType
  inShortcut: boolean
  convActFn: DcAeActivation
  scalingFactor: number
  /** Image side ÷ latent side: 2^(stages − 1) for every published DC-AE. */
  upsamplingFactor: number
}

type Json = Record<string, unknown>

const BLOCK_TYPES: readonly string[] = ['ResBlock', 'EfficientViTBlock'] satisfies DcAeBlockType[]
const ACTIVATIONS: Record<string, DcAeActivation> = {
  silu: 'silu',
  swish: 'silu',
  relu: 'relu',
  gelu: 'gelu',
  mish: 'mish',
}
const UPSAMPLE_TYPES: readonly string[] = ['interpolate', 'pixel_shuffle'] satisfies DcAeUpsampleBlockType[]

/**
 * Fields diffusers added later (0.35, DC-AE-turbo) with defaults that keep the
 * earlier behaviour: a config saved before them (the published
 * dc-ae-f32c32-sana-1.0-diffusers) lacks them and means these values.
 */
const LATER_FIELD_DEFAULTS = { decoder_in_shortcut: true, decoder_conv_act_fn: 'relu' } as const

/** Parses and checks the text of an `AutoencoderDC` config.json. */
export function parseDcAeConfig(text: string, file = DC_AE_CONFIG_FILE): DcAeConfig {
  const invalid = (detail: string) => new KelixError('CHECKPOINT_CONFIG_INVALID', detail, { file: file })
  const json = parseJsonObject(text, invalid)
  if (json._class_name !== 'AutoencoderDC')
    throw invalid(`_class_name is ${JSON.stringify(json._class_name)}, expected "AutoencoderDC" (diffusers' DC-AE)`)
  const r = reader(json, invalid)

  const imageChannels = r.positiveInt('in_channels')
  if (imageChannels !== 3)
    throw invalid(`in_channels is ${imageChannels}; not implemented (the image decoder writes RGB: 3)`)
  const stages = readStages(r, invalid)

  // diffusers treats every value but "interpolate" as pixel shuffle: only the two it names are accepted.
  const upsampleBlockType = r.asChoice(
    r.required('upsample_block_type'),
    'upsample_block_type',
    UPSAMPLE_TYPES,
  ) as DcAeUpsampleBlockType
  const inShortcut = r.optional('decoder_in_shortcut', LATER_FIELD_DEFAULTS.decoder_in_shortcut)
  if (typeof inShortcut !== 'boolean')
    throw invalid(`decoder_in_shortcut is ${JSON.stringify(inShortcut)}, expected true or false`)
  const convActFn = r.asActivation(
    r.optional('decoder_conv_act_fn', LATER_FIELD_DEFAULTS.decoder_conv_act_fn),
    'decoder_conv_act_fn',
  )

  const config: DcAeConfig = {
    imageChannels,
    latentChannels: r.positiveInt('latent_channels'),
    attentionHeadDim: r.positiveInt('attention_head_dim'),
    stages,
    upsampleBlockType,
    inShortcut,
    convActFn,
    scalingFactor: r.positive('scaling_factor'),
    upsamplingFactor: 1,
  }
  config.upsamplingFactor = checkStageChain(config, invalid)
  return config
}

/** Entry i of every `decoder_*` per-stage field, as stage i. */
function readStages(r: Reader, invalid: (detail: string) => KelixError): DcAeStage[] {
  const channels = r.list('decoder_block_out_channels', (v, f) => r.asPositiveInt(v, f))
  if (channels.length === 0) throw invalid('decoder_block_out_channels is empty')
  const n = channels.length
  const layers = r.list('decoder_layers_per_block', (v, f) => r.asCount(v, f), n)
  const blockTypes = r.perStage('decoder_block_types', n, (v, f) => r.asChoice(v, f, BLOCK_TYPES) as DcAeBlockType)
  const normTypes = r.perStage('decoder_norm_types', n, (v, f) => r.asChoice(v, f, ['rms_norm']) as DcAeNormType)
  const actFns = r.perStage('decoder_act_fns', n, (v, f) => r.asActivation(v, f))
  const multiscales = r.list('decoder_qkv_multiscales', (v, f) => r.asKernelSizes(v, f), n)
  return channels.map((c, i) => ({
    channels: c,
    layers: layers[i] as number,
    blockType: blockTypes[i] as DcAeBlockType,
    qkvMultiscales: multiscales[i] as number[],
    normType: normTypes[i] as DcAeNormType,
    actFn: actFns[i] as DcAeActivation,
  }))
}

/**
 * Follows the channels through the decoder as diffusers builds it, refusing
 * configurations whose tensors would not fit together (diffusers fails on them
 * at the first decode), and returns the total upsampling factor.
 */
function checkStageChain(c: DcAeConfig, invalid: (detail: string) => KelixError): number {
  const { stages } = c
  const last = stages.length - 1
  const top = (stages[last] as DcAeStage).channels
  if (c.inShortcut && top % c.latentChannels !== 0) {
    throw invalid(
      `decoder_in_shortcut is true but decoder_block_out_channels[${last}] (${top}) is not a multiple of latent_channels (${c.latentChannels})`,
    )
  }
  let current = top
  let factor = 1
  for (let i = last; i >= 0; i--) {
    const stage = stages[i] as DcAeStage
    if (i < last && stage.layers > 0) {
      const from = (stages[i + 1] as DcAeStage).channels
      if (current !== from)
        throw invalid(
          `decoder stage ${i} upsamples from ${from} channels but receives ${current} (a stage with 0 layers between them keeps its input's width)`,
        )
      if ((4 * stage.channels) % from !== 0)
        throw invalid(
          `decoder stage ${i}: the upsampling shortcut repeats ${from} channels to 4 × ${stage.channels}, which is not a multiple`,
        )
      current = stage.channels
      factor *= 2
    }
    if (stage.layers > 0 && stage.blockType === 'EfficientViTBlock' && stage.channels < c.attentionHeadDim) {
      throw invalid(
        `decoder stage ${i}: ${stage.channels} channels are fewer than attention_head_dim (${c.attentionHeadDim}), so the attention has no head`,
      )
    }
  }
  // With no layers in stage 0, diffusers' conv_out is itself an upsampling block from stage 1's width.
  const first = stages[0] as DcAeStage
  if (first.layers === 0) {
    if (stages.length < 2)
      throw invalid(
        'decoder_layers_per_block[0] is 0 with a single stage: diffusers then reads a second stage width that does not exist',
      )
    factor *= 2
  }
  const outChannels = first.layers > 0 ? first.channels : (stages[1] as DcAeStage).channels
  if (current !== outChannels)
    throw invalid(`the decoder's last block gives ${current} channels but norm_out and conv_out take ${outChannels}`)
  return factor
}

type Reader = ReturnType<typeof reader>

/** Typed field access that names the field and the value it found. */
function reader(obj: Json, invalid: (detail: string) => KelixError) {
  const show = (value: unknown) => JSON.stringify(value) ?? String(value)
  const required = (name: string): unknown => {
    if (!(name in obj)) throw invalid(`${name} is missing`)
    return obj[name]
  }
  const asPositiveInt = (value: unknown, field: string): number => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0)
      throw invalid(`${field} is ${show(value)}, expected a positive integer`)
    return value
  }
  const asCount = (value: unknown, field: string): number => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0)
      throw invalid(`${field} is ${show(value)}, expected a non-negative integer`)
    return value
  }
  const asChoice = (value: unknown, field: string, implemented: readonly string[]): string => {
    if (typeof value !== 'string' || !implemented.includes(value)) {
      throw invalid(
        `${field} is ${show(value)}; not implemented (the converter implements ${implemented.map((v) => JSON.stringify(v)).join(', ')})`,
      )
    }
    return value
  }
  const asActivation = (value: unknown, field: string): DcAeActivation => {
    // diffusers' get_activation lower-cases the name.
    const act = typeof value === 'string' ? ACTIVATIONS[value.toLowerCase()] : undefined
    if (act === undefined)
      throw invalid(
        `${field} is ${show(value)}; not implemented (the converter implements ${Object.keys(ACTIVATIONS)
          .map((v) => JSON.stringify(v))
          .join(', ')})`,
      )
    return act
  }
  const asKernelSizes = (value: unknown, field: string): number[] => {
    if (!Array.isArray(value)) throw invalid(`${field} is ${show(value)}, expected a list of kernel sizes`)
    return value.map((k, j) => {
      // An even kernel with padding k // 2 changes the feature map's size; diffusers then fails to concatenate.
      if (typeof k !== 'number' || !Number.isInteger(k) || k <= 0 || k % 2 === 0)
        throw invalid(`${field}[${j}] is ${show(k)}, expected an odd positive kernel size`)
      return k
    })
  }
  /** A list of `length` entries (any length when undefined), each checked by `item`. */
  const list = <T>(name: string, item: (value: unknown, field: string) => T, length?: number): T[] => {
    const value = required(name)
    if (!Array.isArray(value)) throw invalid(`${name} is ${show(value)}, expected a list`)
    if (length !== undefined && value.length !== length) {
      throw invalid(`${name} has ${value.length} entries but decoder_block_out_channels has ${length}`)
    }
    return value.map((v, i) => item(v, `${name}[${i}]`))
  }
  return {
    required,
    asPositiveInt,
    asCount,
    asChoice,
    asActivation,
    asKernelSizes,
    list,
    /** A field diffusers accepts as one value for every stage or as a per-stage list. */
    perStage<T>(name: string, stages: number, item: (value: unknown, field: string) => T): T[] {
      const value = required(name)
      if (!Array.isArray(value)) return Array.from({ length: stages }, () => item(value, name))
      return list(name, item, stages)
    },
    optional: (name: string, fallback: unknown): unknown => (name in obj ? obj[name] : fallback),
    positiveInt: (name: string) => asPositiveInt(required(name), name),
    positive(name: string): number {
      const value = required(name)
      if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value))
        throw invalid(`${name} is ${show(value)}, expected a positive number`)
      return value
    },
  }
}
