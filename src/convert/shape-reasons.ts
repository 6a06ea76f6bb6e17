/** Which config fields set a key's expected shape: said in a shape error, so the user knows which side to doubt. */
import type { KeyeConfig } from './keye-config.js'

export function shapeReason(c: KeyeConfig, key: string): string | undefined {
  const { qwen, vision, quantizer, blockDecoder } = c
  const vocab = `qwen_config.vocab_size ${qwen.vocabSize} + codebook_size ${qwen.codebookSize}, embed_dim ${qwen.hidden}`
  if (key.startsWith('model.model.tok_embeddings.') || key.startsWith('model.model.output.')) return vocab
  if (key.startsWith('model.model.token_head.')) {
    return `token_decoder_config.d_model ${blockDecoder.dModel}, dim_feedforward ${blockDecoder.feedForward}, max_pos_length ${blockDecoder.positionRows}; qwen_config.embed_dim ${qwen.hidden}`
  }
  if (key.startsWith('model.model.')) {
    return `qwen_config.embed_dim ${qwen.hidden}, num_heads ${qwen.heads}, num_kv_heads ${qwen.kvHeads}, head_dim ${qwen.headDim}, intermediate_dim ${qwen.intermediate}`
  }
  if (key.startsWith('visual_tokenizer.quantizer.')) {
    return `tokenizer_config.embedding_dim ${quantizer.codeDim}, init_embedding_dim ${quantizer.tableWidth}, codebook_size ${qwen.codebookSize}`
  }
  if (key.startsWith('visual_tokenizer.visual.')) {
    return `vision_config.hidden_size ${vision.hidden}, intermediate_size ${vision.intermediate}, patch_size ${vision.patchSize}, image_size ${vision.imageSize}`
  }
  if (key.startsWith('visual_tokenizer.'))
    return `vision_config.hidden_size ${vision.hidden} (merged ×4), qwen_config.embed_dim ${qwen.hidden}, tokenizer_config.embedding_dim ${quantizer.codeDim} × n_q_tokens ${qwen.codebooks}`
  return undefined
}
