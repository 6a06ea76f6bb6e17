/**
 * Kelix's published checkpoint layout, written from sizes: the `KeyeARConfig`
 * dump (config.json) and every tensor key of `KeyeARModel.state_dict()` with
 * its shape and how a random model initialises it. The tiny model is such a
 * checkpoint with random weights (tiny-checkpoint.ts); the benchmark writes
 * one with the real sizes.
 */

/** The sizes that fix every shape of the checkpoint. */
export interface KelixCheckpointSizes {
  textVocab: number
  codebooks: number
  /** Codes per sub-codebook. */
  codesPerBook: number
  hidden: number
  layers: number
  heads: number
  kvHeads: number
  headDim: number
  intermediate: number
  maxSeqLen: number
  ropeBase: number
  normEps: number
  vision: {
    width: number
    layers: number
    heads: number
    mlp: number
    patchSize: number
    positionTable: number
    layerNormEps: number
    ropeTheta: number
  }
  quantizer: { codeDim: number; tableWidth: number; upProjection: number }
  blockDecoder: { dModel: number; heads: number; layers: number; feedForward: number; positionRows: number }
  /** Special ids: eos (<|im_end|>), image pad, vision start/end, <eob>. */
  ids: { eos: number; imagePad: number; visionStart: number; visionEnd: number; eob: number }
  /** Spread of the LM head's random logits. */
  lmHeadGain: number
}

/** How a random model fills a tensor: uniform with this standard deviation around `center`. */
export interface TensorInit {
  std: number
  center?: number
}

export interface TensorSpec {
  key: string
  shape: number[]
  init: TensorInit
}

/** config.json as the reference's `config.save()` writes it (pydantic dump, `__class__` at the top). */
export function keyeArConfig(s: KelixCheckpointSizes): Record<string, unknown> {
  const codebookSize = s.codebooks * s.codesPerBook
  return {
    model_class: 'KeyeARModel',
    qwen_config: {
      model_class: 'UnifiedQwen3Model',
      vocab_size: s.textVocab,
      embed_dim: s.hidden,
      num_layers: s.layers,
      tie_word_embeddings: false,
      hidden_act: 'silu',
      num_heads: s.heads,
      num_kv_heads: s.kvHeads,
      head_dim: s.headDim,
      attn_dropout: 0,
      attention_function: 'flash_attention_2',
      q_proj_bias: false,
      k_proj_bias: false,
      v_proj_bias: false,
      attention_bias: false,
      intermediate_dim: s.intermediate,
      max_seq_len: s.maxSeqLen,
      rope_base: s.ropeBase,
      rope_impl: 'llama',
      rope_theta: 10000,
      rope_scaling: null,
      use_sliding_window: false,
      sliding_window: null,
      norm_eps: s.normEps,
      rms_norm_eps: s.normEps,
      q_norm: true,
      k_norm: true,
      eos_token_id: s.ids.eos,
      use_multimodal_rope: true,
      mrope_section: null,
      pre_embedding_size: null,
      pre_embedding_tokens: null,
      image_token_id: s.ids.imagePad,
      pad_token_id: null,
      q_eos_token: s.ids.eob,
      vision_start_token_id: s.ids.visionStart,
      vision_end_token_id: s.ids.visionEnd,
      output_last_hidden_states_only: false,
      token_decoder_with_teacher_forcing: true,
      codebook_size: codebookSize,
      n_q_tokens: s.codebooks,
      skip_output_layer: false,
    },
    tokenizer_config: {
      model_class: 'KeyeImageTokenizer',
      vision_config: {
        model_class: 'KeyeVL1_5VisionModel',
        image_size: s.vision.positionTable * s.vision.patchSize,
        patch_size: s.vision.patchSize,
        num_channels: 3,
        hidden_size: s.vision.width,
        num_hidden_layers: s.vision.layers,
        num_attention_heads: s.vision.heads,
        intermediate_size: s.vision.mlp,
        hidden_act: 'gelu_pytorch_tanh',
        max_seq_len: 4096,
        layer_norm_eps: s.vision.layerNormEps,
        attention_dropout: 0,
        has_learnable_position_embedding: true,
        use_qk_norm: false,
        qk_norm_eps: 1e-6,
        rope_theta: s.vision.ropeTheta,
        attention_function: 'flash_attention_2',
        output_attentions: false,
        output_hidden_states: false,
      },
      codebook_size: codebookSize,
      embedding_dim: s.quantizer.codeDim,
      init_embedding_dim: s.quantizer.tableWidth,
      llm_hidden_size: s.hidden,
      n_q_tokens: s.codebooks,
      split_dim: false,
      split_voc: s.codebooks,
      add_voc_reducer: false,
      vq_sampling_mode: 'argmin',
      vq_temperature: 1,
      vq_temperature_decay: 0.999,
      vq_min_temperature: 0.1,
      pre_llm_align: false,
      output_dim: s.quantizer.upProjection,
      fusion_type: 'sum',
    },
    token_decoder_config: {
      model_class: 'UnifiedTokenDecoder',
      vocab_size: s.textVocab,
      max_pos_length: s.blockDecoder.positionRows,
      max_length: s.codebooks + 1,
      d_model: s.blockDecoder.dModel,
      eos_token: s.ids.eob,
      nhead: s.blockDecoder.heads,
      num_layers: s.blockDecoder.layers,
      dim_feedforward: s.blockDecoder.feedForward,
      use_gradient_checkpointing: true,
      input_dim: s.hidden,
      reduce: true,
      attention_function: 'eager',
    },
    __class__: 'KeyeARConfig',
  }
}

/** Every tensor of the state dict, the unused ones included (a converter must ignore them). */
export function kelixTensorSpecs(s: KelixCheckpointSizes): TensorSpec[] {
  const specs: TensorSpec[] = []
  const linear = (key: string, out: number, inDim: number, bias: boolean, gain = 1) => {
    specs.push({ key: `${key}.weight`, shape: [out, inDim], init: { std: gain / Math.sqrt(inDim) } })
    if (bias) specs.push({ key: `${key}.bias`, shape: [out], init: { std: 0.02 } })
  }
  const norm = (key: string, dim: number, param: 'scale' | 'weight', bias: boolean) => {
    specs.push({ key: `${key}.${param}`, shape: [dim], init: { std: 0.1, center: 1 } })
    if (bias) specs.push({ key: `${key}.bias`, shape: [dim], init: { std: 0.02 } })
  }
  const table = (key: string, shape: number[], std: number) => specs.push({ key, shape, init: { std } })

  const vocab = s.textVocab + s.codebooks * s.codesPerBook
  const llm = 'model.model'
  table(`${llm}.tok_embeddings.embed_tokens.weight`, [vocab, s.hidden], 1)
  for (let i = 0; i < s.layers; i++) {
    const p = `${llm}.layers.${i}`
    norm(`${p}.sa_norm`, s.hidden, 'scale', false)
    norm(`${p}.mlp_norm`, s.hidden, 'scale', false)
    linear(`${p}.attn.q_proj`, s.heads * s.headDim, s.hidden, false)
    linear(`${p}.attn.k_proj`, s.kvHeads * s.headDim, s.hidden, false)
    linear(`${p}.attn.v_proj`, s.kvHeads * s.headDim, s.hidden, false)
    linear(`${p}.attn.output_proj`, s.hidden, s.heads * s.headDim, false)
    norm(`${p}.attn.q_norm`, s.headDim, 'scale', false)
    norm(`${p}.attn.k_norm`, s.headDim, 'scale', false)
    linear(`${p}.mlp.w1`, s.intermediate, s.hidden, false)
    linear(`${p}.mlp.w3`, s.intermediate, s.hidden, false)
    linear(`${p}.mlp.w2`, s.hidden, s.intermediate, false)
  }
  norm(`${llm}.norm`, s.hidden, 'scale', false)
  linear(`${llm}.output`, vocab, s.hidden, false, s.lmHeadGain)
  linear('lm_head', vocab, s.hidden, false)

  const head = `${llm}.token_head`
  const b = s.blockDecoder
  linear(`${head}.input_linear`, b.dModel, s.hidden, true)
  table(`${head}.position_embedding.weight`, [b.positionRows, b.dModel], 1)
  for (let i = 0; i < b.layers; i++) {
    const p = `${head}.transformer.layers.${i}`
    norm(`${p}.sa_norm`, b.dModel, 'weight', true)
    norm(`${p}.mlp_norm`, b.dModel, 'weight', true)
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'output_proj']) linear(`${p}.attn.${n}`, b.dModel, b.dModel, true)
    linear(`${p}.mlp.w1`, b.feedForward, b.dModel, false)
    linear(`${p}.mlp.w3`, b.feedForward, b.dModel, false)
    linear(`${p}.mlp.w2`, b.dModel, b.feedForward, false)
  }
  linear(`${head}.output_linear`, s.hidden, b.dModel, true)
  norm(`${head}.final_norm`, b.dModel, 'weight', true)

  const v = s.vision
  const vit = 'visual_tokenizer.visual'
  const patchValues = 3 * v.patchSize * v.patchSize
  specs.push({
    key: `${vit}.embeddings.patch_embedding.weight`,
    shape: [v.width, 3, v.patchSize, v.patchSize],
    init: { std: 1 / Math.sqrt(patchValues) },
  })
  specs.push({ key: `${vit}.embeddings.patch_embedding.bias`, shape: [v.width], init: { std: 0.02 } })
  table(`${vit}.embeddings.position_embedding.weight`, [v.positionTable * v.positionTable, v.width], 0.5)
  table(`${vit}.embeddings.packing_position_embedding.weight`, [32768, v.width], 0.02)
  for (let i = 0; i < v.layers; i++) {
    const p = `${vit}.encoder.layers.${i}`
    norm(`${p}.sa_norm`, v.width, 'weight', true)
    norm(`${p}.mlp_norm`, v.width, 'weight', true)
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'output_proj']) linear(`${p}.attn.${n}`, v.width, v.width, true)
    linear(`${p}.mlp.w1`, v.mlp, v.width, true)
    linear(`${p}.mlp.w2`, v.width, v.mlp, true)
  }
  norm(`${vit}.ln_post`, v.width, 'weight', true)
  const merged = 4 * v.width
  norm('visual_tokenizer.mlp_AR.pre_norm', merged, 'weight', true)
  linear('visual_tokenizer.mlp_AR.linear_1', merged, merged, true)
  linear('visual_tokenizer.mlp_AR.linear_2', s.hidden, merged, true)
  linear('visual_tokenizer.encoder', s.codebooks * s.quantizer.codeDim, s.hidden, true)
  const q = s.quantizer
  for (let k = 0; k < s.codebooks; k++) {
    const p = `visual_tokenizer.quantizer.${k}`
    table(`${p}.embedding.weight`, [s.codebooks * s.codesPerBook, q.tableWidth], 1)
    linear(`${p}.embedding_proj`, q.codeDim, q.tableWidth, true)
    norm(`${p}.q_norm`, q.codeDim, 'weight', true)
    norm(`${p}.z_norm`, q.codeDim, 'weight', true)
    specs.push({
      key: `visual_tokenizer.up_projectors.${k}.weight`,
      shape: [q.upProjection, q.codeDim],
      init: { std: 1 / Math.sqrt(q.codeDim) },
    })
  }
  return specs
}
