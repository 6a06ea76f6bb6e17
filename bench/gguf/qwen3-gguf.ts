/**
 * The LLM of a preset checkpoint as a llama.cpp Qwen3 GGUF: the same weights
 * the converter exports (read from the same bf16 checkpoint), so llama.cpp and
 * Kelix Serve run the same model. What llama.cpp has no counterpart for is
 * left out: the block decoder, the vision tower, the image rows.
 *
 *   token_embd     the embedding table's text rows (151,936), F32 like the preset's table
 *   blk.N.*        the LLM's layers; linears at the file's type, norms F32
 *   output         the LM head's text rows (what a chat step of ours computes),
 *                  Q8_0 once the linears are quantized (our exports' int8 head)
 *   tokenizer      the checkpoint's tokenizer.json, ids below the text vocabulary
 *
 * Kelix's LLM is Qwen3's (RMSNorm before attention and MLP, q/k RMSNorm per
 * head, SwiGLU with w1 the gate, w3 up, w2 down, RoPE θ from the config).
 */
import type { KelixCheckpointSizes } from '../../src/builder/kelix-checkpoint-layout.js'
import { Checkpoint, readCheckpointFile } from '../../src/convert/checkpoint.js'
import { encodeGgml, type GgmlType } from './ggml-blocks.js'
import { gguf, writeGguf, type GgufMetadata, type GgufTensor } from './gguf-file.js'

/** llama.cpp's `llama_ftype` for a file whose linears are all `type`. */
const FILE_TYPE: Readonly<Record<GgmlType, number>> = { F32: 0, Q4_0: 2, Q8_0: 7 }

/** llama.cpp's token types. */
const TOKEN_TYPE = { normal: 1, control: 3, userDefined: 4, unused: 5 } as const

export interface Qwen3GgufOptions {
  checkpoint: string
  sizes: KelixCheckpointSizes
  /** The linears' type; the head is Q8_0 when they are quantized. */
  type: GgmlType
  path: string
}

export async function writeQwen3Gguf(opts: Qwen3GgufOptions): Promise<{ bytes: number }> {
  const { sizes: s, type } = opts
  const headType: GgmlType = type === 'F32' ? 'F32' : 'Q8_0'
  const ckpt = await Checkpoint.open(opts.checkpoint)
  try {
    const rows = (key: string, count: number, as: GgmlType) => async () =>
      encodeGgml(as, await ckpt.readRows(key, 0, count))
    const whole = (key: string, as: GgmlType) => async () => encodeGgml(as, await ckpt.read(key))
    const matrix = (name: string, key: string, out: number, inDim: number, as: GgmlType = type): GgufTensor => ({
      name,
      dims: [inDim, out],
      type: as,
      data: whole(key, as),
    })
    const vector = (name: string, key: string, length: number): GgufTensor => ({
      name,
      dims: [length],
      type: 'F32',
      data: whole(key, 'F32'),
    })
    const llm = 'model.model'
    const tensors: GgufTensor[] = [
      {
        name: 'token_embd.weight',
        dims: [s.hidden, s.textVocab],
        type: 'F32',
        data: rows(`${llm}.tok_embeddings.embed_tokens.weight`, s.textVocab, 'F32'),
      },
    ]
    const q = s.heads * s.headDim
    const kv = s.kvHeads * s.headDim
    for (let i = 0; i < s.layers; i++) {
      const p = `${llm}.layers.${i}`
      const b = `blk.${i}`
      tensors.push(
        vector(`${b}.attn_norm.weight`, `${p}.sa_norm.scale`, s.hidden),
        matrix(`${b}.attn_q.weight`, `${p}.attn.q_proj.weight`, q, s.hidden),
        matrix(`${b}.attn_k.weight`, `${p}.attn.k_proj.weight`, kv, s.hidden),
        matrix(`${b}.attn_v.weight`, `${p}.attn.v_proj.weight`, kv, s.hidden),
        matrix(`${b}.attn_output.weight`, `${p}.attn.output_proj.weight`, s.hidden, q),
        vector(`${b}.attn_q_norm.weight`, `${p}.attn.q_norm.scale`, s.headDim),
        vector(`${b}.attn_k_norm.weight`, `${p}.attn.k_norm.scale`, s.headDim),
        vector(`${b}.ffn_norm.weight`, `${p}.mlp_norm.scale`, s.hidden),
        matrix(`${b}.ffn_gate.weight`, `${p}.mlp.w1.weight`, s.intermediate, s.hidden),
        matrix(`${b}.ffn_up.weight`, `${p}.mlp.w3.weight`, s.intermediate, s.hidden),
        matrix(`${b}.ffn_down.weight`, `${p}.mlp.w2.weight`, s.hidden, s.intermediate),
      )
    }
    tensors.push(vector('output_norm.weight', `${llm}.norm.scale`, s.hidden), {
      name: 'output.weight',
      dims: [s.hidden, s.textVocab],
      type: headType,
      data: rows(`${llm}.output.weight`, s.textVocab, headType),
    })
    const metadata: GgufMetadata = {
      'general.architecture': gguf.string('qwen3'),
      'general.name': gguf.string('Kelix LLM (synthetic preset)'),
      'general.file_type': gguf.u32(FILE_TYPE[type]),
      'general.quantization_version': gguf.u32(2),
      'qwen3.context_length': gguf.u32(s.maxSeqLen),
      'qwen3.embedding_length': gguf.u32(s.hidden),
      'qwen3.feed_forward_length': gguf.u32(s.intermediate),
      'qwen3.block_count': gguf.u32(s.layers),
      'qwen3.attention.head_count': gguf.u32(s.heads),
      'qwen3.attention.head_count_kv': gguf.u32(s.kvHeads),
      'qwen3.attention.key_length': gguf.u32(s.headDim),
      'qwen3.attention.value_length': gguf.u32(s.headDim),
      'qwen3.attention.layer_norm_rms_epsilon': gguf.f32(s.normEps),
      'qwen3.rope.freq_base': gguf.f32(s.ropeBase),
      ...(await tokenizerMetadata(opts.checkpoint, s)),
    }
    return await writeGguf(opts.path, metadata, tensors)
  } finally {
    await ckpt.close()
  }
}

interface TokenizerJson {
  model: { vocab: Record<string, number>; merges: Array<string | [string, string]> }
  added_tokens: Array<{ id: number; content: string; special: boolean }>
}

/**
 * Qwen's byte-level BPE as llama.cpp's `gpt2` tokenizer with the `qwen2`
 * pre-tokenizer: one token per id below the text vocabulary, ids no token
 * has as `[PAD<id>]` (unused), as llama.cpp's converter pads them.
 */
async function tokenizerMetadata(checkpoint: string, s: KelixCheckpointSizes): Promise<GgufMetadata> {
  const json = JSON.parse(await readCheckpointFile(checkpoint, 'tokenizer.json')) as TokenizerJson
  const tokens = Array.from({ length: s.textVocab }, (_, id) => `[PAD${id}]`)
  const types: number[] = Array.from({ length: s.textVocab }, () => TOKEN_TYPE.unused)
  for (const [token, id] of Object.entries(json.model.vocab)) {
    if (id >= s.textVocab) continue
    tokens[id] = token
    types[id] = TOKEN_TYPE.normal
  }
  for (const t of json.added_tokens) {
    if (t.id >= s.textVocab) continue
    tokens[t.id] = t.content
    types[t.id] = t.special ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined
  }
  const endOfText = json.added_tokens.find((t) => t.content === '<|endoftext|>')?.id ?? s.ids.eos
  return {
    'tokenizer.ggml.model': gguf.string('gpt2'),
    'tokenizer.ggml.pre': gguf.string('qwen2'),
    'tokenizer.ggml.tokens': gguf.strings(tokens),
    'tokenizer.ggml.token_type': gguf.i32s(types),
    'tokenizer.ggml.merges': gguf.strings(json.model.merges.map((m) => (typeof m === 'string' ? m : m.join(' ')))),
    'tokenizer.ggml.eos_token_id': gguf.u32(s.ids.eos),
    'tokenizer.ggml.padding_token_id': gguf.u32(endOfText),
    'tokenizer.ggml.bos_token_id': gguf.u32(endOfText),
    'tokenizer.ggml.add_bos_token': gguf.bool(false),
  }
}
