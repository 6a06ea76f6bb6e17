/**
 * The checkpoint's config.json (`KeyeARConfig`, the reference's pydantic dump)
 * as the converter reads it: the sizes of every part, and the flags whose other
 * values the graphs do not implement, refused by name.
 */
import { isJsonObject, parseJsonObject } from './json-object.js'
import { KelixError } from '../errors/kelix-error.js'

export const KEYE_CONFIG_FILE = 'config.json'

/** The fields the converter reads; the file holds many more (training settings), which are ignored. */
export interface KeyeConfig {
  qwen: {
    vocabSize: number
    codebookSize: number
    codebooks: number
    hidden: number
    layers: number
    heads: number
    kvHeads: number
    headDim: number
    intermediate: number
    normEps: number
    ropeBase: number
    maxSeqLen: number
    eosTokenId: number
    imageTokenId: number
    visionStartTokenId: number
    visionEndTokenId: number
    eobTokenId: number
  }
  vision: {
    hidden: number
    layers: number
    heads: number
    intermediate: number
    patchSize: number
    imageSize: number
    layerNormEps: number
    ropeTheta: number
  }
  quantizer: {
    codeDim: number
    tableWidth: number
  }
  blockDecoder: {
    dModel: number
    heads: number
    layers: number
    feedForward: number
    maxLength: number
    positionRows: number
  }
}

type Json = Record<string, unknown>

/** Parses and checks the text of a checkpoint's config.json. */
export function parseKeyeConfig(text: string): KeyeConfig {
  const json = parseJsonObject(text, invalid)
  if (json.__class__ !== 'KeyeARConfig') {
    throw invalid(
      `__class__ is ${JSON.stringify(json.__class__)}, expected "KeyeARConfig" (the Kelix-SFT checkpoint; a DiT checkpoint says "SanaConfig")`,
    )
  }
  const qwen = section(json, 'qwen_config')
  const tok = section(json, 'tokenizer_config')
  const vision = section(tok, 'vision_config', 'tokenizer_config.')
  const head = section(json, 'token_decoder_config')
  const q = reader(qwen, 'qwen_config')
  const t = reader(tok, 'tokenizer_config')
  const v = reader(vision, 'tokenizer_config.vision_config')
  const h = reader(head, 'token_decoder_config')

  // Values other than these change the architecture in ways the graphs do not implement.
  q.expect('q_norm', true)
  q.expect('k_norm', true)
  q.expect('tie_word_embeddings', false)
  q.expect('hidden_act', 'silu')
  for (const flag of [
    'q_proj_bias',
    'k_proj_bias',
    'v_proj_bias',
    'attention_bias',
    'use_sliding_window',
    'skip_output_layer',
  ])
    q.expectIfPresent(flag, false)
  for (const field of ['rope_scaling', 'pre_embedding_size', 'pre_embedding_tokens']) q.expectIfPresent(field, null)
  t.expect('split_dim', false)
  t.expect('pre_llm_align', false)
  t.expect('add_voc_reducer', false)
  t.expect('vq_sampling_mode', 'argmin')
  v.expect('hidden_act', 'gelu_pytorch_tanh')
  v.expectIfPresent('use_qk_norm', false)
  v.expectIfPresent('has_learnable_position_embedding', true)
  h.expect('reduce', true)

  const codebooks = q.int('n_q_tokens')
  const config: KeyeConfig = {
    qwen: {
      vocabSize: q.int('vocab_size'),
      codebookSize: q.int('codebook_size'),
      codebooks,
      hidden: q.int('embed_dim'),
      layers: q.int('num_layers'),
      heads: q.int('num_heads'),
      kvHeads: q.int('num_kv_heads'),
      headDim: q.int('head_dim'),
      intermediate: q.int('intermediate_dim'),
      normEps: q.positive('norm_eps'),
      // `rope_base` is what the LLM's RoPE uses; the file's `rope_theta` is an unused leftover.
      ropeBase: q.positive('rope_base'),
      maxSeqLen: q.int('max_seq_len'),
      eosTokenId: q.id('eos_token_id'),
      imageTokenId: q.id('image_token_id'),
      visionStartTokenId: q.id('vision_start_token_id'),
      visionEndTokenId: q.id('vision_end_token_id'),
      eobTokenId: q.id('q_eos_token'),
    },
    vision: {
      hidden: v.int('hidden_size'),
      layers: v.int('num_hidden_layers'),
      heads: v.int('num_attention_heads'),
      intermediate: v.int('intermediate_size'),
      patchSize: v.int('patch_size'),
      imageSize: v.int('image_size'),
      layerNormEps: v.positive('layer_norm_eps'),
      ropeTheta: v.positive('rope_theta'),
    },
    quantizer: { codeDim: t.int('embedding_dim'), tableWidth: t.int('init_embedding_dim') },
    blockDecoder: {
      dModel: h.int('d_model'),
      heads: h.int('nhead'),
      layers: h.int('num_layers'),
      feedForward: h.int('dim_feedforward'),
      maxLength: h.int('max_length'),
      positionRows: h.int('max_pos_length'),
    },
  }
  const problems = relationProblems(config, { tok, head, qwen })
  if (problems.length > 0) throw invalid(problems.join('; '))
  return config
}

/** Relations between sections that a wrong or mixed-up config would break. */
function relationProblems(c: KeyeConfig, raw: { tok: Json; head: Json; qwen: Json }): string[] {
  const problems: string[] = []
  const need = (ok: boolean, message: string) => {
    if (!ok) problems.push(message)
  }
  const { qwen, vision, blockDecoder } = c
  need(
    raw.tok.codebook_size === qwen.codebookSize,
    `tokenizer_config.codebook_size (${String(raw.tok.codebook_size)}) differs from qwen_config.codebook_size (${qwen.codebookSize})`,
  )
  need(
    raw.tok.n_q_tokens === qwen.codebooks,
    `tokenizer_config.n_q_tokens (${String(raw.tok.n_q_tokens)}) differs from qwen_config.n_q_tokens (${qwen.codebooks})`,
  )
  need(
    raw.tok.split_voc === qwen.codebooks,
    `tokenizer_config.split_voc (${String(raw.tok.split_voc)}) must equal n_q_tokens (${qwen.codebooks}): each quantizer has its own slice of the codes`,
  )
  need(
    raw.tok.llm_hidden_size === qwen.hidden,
    `tokenizer_config.llm_hidden_size (${String(raw.tok.llm_hidden_size)}) differs from qwen_config.embed_dim (${qwen.hidden})`,
  )
  need(
    qwen.codebookSize % qwen.codebooks === 0,
    `qwen_config.codebook_size (${qwen.codebookSize}) is not a multiple of n_q_tokens (${qwen.codebooks})`,
  )
  need(
    qwen.heads % qwen.kvHeads === 0,
    `qwen_config.num_heads (${qwen.heads}) is not a multiple of num_kv_heads (${qwen.kvHeads})`,
  )
  need(qwen.headDim % 2 === 0, `qwen_config.head_dim (${qwen.headDim}) must be even for RoPE`)
  need(
    vision.hidden % vision.heads === 0 && (vision.hidden / vision.heads) % 4 === 0,
    `tokenizer_config.vision_config: hidden_size / num_attention_heads (${vision.hidden}/${vision.heads}) must be a multiple of 4 for the 2-D RoPE`,
  )
  need(
    Math.floor(vision.imageSize / vision.patchSize) > 0,
    `tokenizer_config.vision_config.image_size (${vision.imageSize}) is smaller than patch_size (${vision.patchSize})`,
  )
  need(
    blockDecoder.dModel % blockDecoder.heads === 0,
    `token_decoder_config.d_model (${blockDecoder.dModel}) is not a multiple of nhead (${blockDecoder.heads})`,
  )
  need(
    blockDecoder.maxLength === qwen.codebooks + 1,
    `token_decoder_config.max_length (${blockDecoder.maxLength}) must be n_q_tokens + 1 (${qwen.codebooks + 1})`,
  )
  need(
    blockDecoder.positionRows >= blockDecoder.maxLength,
    `token_decoder_config.max_pos_length (${blockDecoder.positionRows}) is below max_length (${blockDecoder.maxLength})`,
  )
  need(
    raw.head.input_dim === qwen.hidden,
    `token_decoder_config.input_dim (${String(raw.head.input_dim)}) differs from qwen_config.embed_dim (${qwen.hidden})`,
  )
  need(
    raw.head.eos_token === qwen.eobTokenId,
    `token_decoder_config.eos_token (${String(raw.head.eos_token)}) differs from qwen_config.q_eos_token (${qwen.eobTokenId})`,
  )
  for (const [name, id] of Object.entries({
    eos_token_id: qwen.eosTokenId,
    image_token_id: qwen.imageTokenId,
    vision_start_token_id: qwen.visionStartTokenId,
    vision_end_token_id: qwen.visionEndTokenId,
    q_eos_token: qwen.eobTokenId,
  })) {
    need(
      id < qwen.vocabSize,
      `qwen_config.${name} (${id}) is outside the text vocabulary (vocab_size ${qwen.vocabSize})`,
    )
  }
  return problems
}

function invalid(detail: string): KelixError {
  return new KelixError('CHECKPOINT_CONFIG_INVALID', detail, { file: KEYE_CONFIG_FILE })
}

function section(parent: Json, name: string, path = ''): Json {
  const value = parent[name]
  if (!isJsonObject(value)) throw invalid(`${path}${name} is missing or not an object`)
  return value
}

/** Typed field access that names the field and the value it found. */
function reader(obj: Json, path: string) {
  const field = (name: string) => `${path}.${name}`
  const number = (name: string, ok: (n: number) => boolean, what: string): number => {
    const value = obj[name]
    if (typeof value !== 'number' || !ok(value))
      throw invalid(`${field(name)} is ${JSON.stringify(value)}, expected ${what}`)
    return value
  }
  return {
    int: (name: string) => number(name, (n) => Number.isInteger(n) && n > 0, 'a positive integer'),
    id: (name: string) => number(name, (n) => Number.isInteger(n) && n >= 0, 'a token id'),
    positive: (name: string) => number(name, (n) => n > 0, 'a positive number'),
    expect(name: string, wanted: unknown) {
      if (obj[name] !== wanted)
        throw invalid(
          `${field(name)} is ${JSON.stringify(obj[name])}; the converter implements only ${JSON.stringify(wanted)}`,
        )
    },
    expectIfPresent(name: string, wanted: unknown) {
      if (name in obj && obj[name] !== wanted)
        throw invalid(
          `${field(name)} is ${JSON.stringify(obj[name])}; the converter implements only ${JSON.stringify(wanted)}`,
        )
    },
  }
}
