/**
 * tokenizer.json and tokenizer_config.json for the tiny model: a Qwen2-style
 * byte-level BPE (same pre-tokenizer layout, same ChatML template) whose
 * merges are learned from a small built-in corpus, plus the Kelix special tokens.
 */
import type { KelixConfig } from '../engine/model-config.js'
import { CHAT_TEMPLATE } from './chat-template.js'

/** Qwen2's pre-tokenizer pattern, in the Oniguruma syntax tokenizer.json carries. */
const QWEN2_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/** The same pattern for JavaScript, used only to learn merges. */
const QWEN2_SPLIT_JS =
  /'(?:[sStTmMdD]|[rR][eE]|[vV][eE]|[lL][lL])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu

const CORPUS = `You are a helpful assistant. The image shows a cat sitting on a red chair near the window.
What is in this picture? Describe the scene in one sentence. There are two dogs playing in the park,
and the sky is blue with a few white clouds. The answer is 42. Please count the apples: 1, 2, 3, 4, 5.
The model reads images and text as discrete tokens, and the same model can answer questions about images
and generate new images. A chart with the numbers 10, 20, 30 and 40 rises from left to right. The text on
the sign says "Welcome to the city". It is a sunny day in the mountains, and the river runs through the
valley. I think the best answer is the second one, because the first one does not match the question.
Kubernetes runs the server behind a load balancer, and the operators watch latency in Grafana.
Tokens per second, time to first token and queue time are the numbers that matter to them.
Café, naïve, résumé, 東京, Привет, 😀 — the tokenizer keeps every byte, so nothing is ever unknown.`

/** GPT-2's reversible map from bytes to printable characters. */
export function byteToUnicode(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)
  let extra = 0
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : 256 + extra++))
}

/** Learns `count` merges; ties go to the lexicographically smallest pair so the result is stable. */
export function learnMerges(corpus: string, count: number): Array<[string, string]> {
  const charOf = byteToUnicode()
  const encoder = new TextEncoder()
  const wordCounts = new Map<string, number>()
  for (const piece of corpus.match(QWEN2_SPLIT_JS) ?? []) {
    const word = Array.from(encoder.encode(piece), (b) => charOf[b]).join('')
    wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1)
  }
  const words = [...wordCounts].map(([word, n]) => ({ symbols: [...word], n }))
  const merges: Array<[string, string]> = []
  while (merges.length < count) {
    const pairs = new Map<string, number>()
    for (const { symbols, n } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`
        pairs.set(key, (pairs.get(key) ?? 0) + n)
      }
    }
    let best: [string, number] | undefined
    for (const entry of pairs) {
      if (best === undefined || entry[1] > best[1] || (entry[1] === best[1] && entry[0] < best[0])) best = entry
    }
    if (best === undefined) break
    const [left, right] = best[0].split(' ') as [string, string]
    merges.push([left, right])
    for (const word of words) word.symbols = mergePair(word.symbols, left, right)
  }
  return merges
}

function mergePair(symbols: string[], left: string, right: string): string[] {
  const out: string[] = []
  for (let i = 0; i < symbols.length; i++) {
    if (symbols[i] === left && symbols[i + 1] === right) {
      out.push(left + right)
      i++
    } else {
      out.push(symbols[i] as string)
    }
  }
  return out
}

/** Special token strings, by config.json key. `<|endoftext|>` is Qwen's padding token. */
export const SPECIAL_TOKEN_TEXT: Record<keyof KelixConfig['special_tokens'], string> = {
  im_start: '<|im_start|>',
  im_end: '<|im_end|>',
  vision_start: '<|vision_start|>',
  vision_end: '<|vision_end|>',
  image_pad: '<|image_pad|>',
  eob: '<eob>',
  mm_pos_start: '<|mm_pos_start|>',
  mm_pos_end: '<|mm_pos_end|>',
}

export interface TokenizerFiles {
  tokenizerJson: object
  tokenizerConfig: object
}

/**
 * Byte ids 0..255, then one id per merge; the special tokens take the ids
 * config.json gives them, and `<|endoftext|>` the first id after the merges.
 */
export function buildTokenizerFiles(config: KelixConfig): TokenizerFiles {
  const charOf = byteToUnicode()
  const specialIds = Object.values(config.special_tokens)
  const endOfText = Math.min(...specialIds) - 1
  const merges = learnMerges(CORPUS, endOfText - 256)
  const vocab: Record<string, number> = {}
  charOf.forEach((ch, b) => (vocab[ch] = b))
  merges.forEach(([a, b], i) => (vocab[a + b] = 256 + i))

  const special = [
    { id: endOfText, content: '<|endoftext|>' },
    ...Object.entries(SPECIAL_TOKEN_TEXT).map(([key, content]) => ({
      id: config.special_tokens[key as keyof typeof SPECIAL_TOKEN_TEXT],
      content,
    })),
  ].sort((a, b) => a.id - b.id)
  const addedTokens = special.map(({ id, content }) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }))

  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: QWEN2_SPLIT }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  }
  const tokenizerConfig = {
    tokenizer_class: 'Qwen2Tokenizer',
    add_bos_token: false,
    add_prefix_space: false,
    bos_token: null,
    eos_token: '<|im_end|>',
    pad_token: '<|endoftext|>',
    unk_token: null,
    errors: 'replace',
    clean_up_tokenization_spaces: false,
    split_special_tokens: false,
    model_max_length: config.llm.max_position_embeddings,
    added_tokens_decoder: Object.fromEntries(addedTokens.map(({ id, ...rest }) => [String(id), rest])),
    chat_template: CHAT_TEMPLATE,
  }
  return { tokenizerJson, tokenizerConfig }
}
