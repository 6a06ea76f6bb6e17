/**
 * The generated-image grammar: what the model must write after
 * <|vision_start|> for a grid×grid image. Row markers and <|vision_end|> are
 * forced; each image block is sampled slot by slot, slot k within
 * sub-codebook k. Every result is therefore a complete grid.
 *
 *   [marker ids of row 0] [image] × grid  …  [marker ids of row grid−1] [image] × grid  <|vision_end|>
 */
import type { KelixConfig } from '../model-config.js'
import { codebookPart, vocabPartRange } from '../vocab-parts.js'
import { rowMarker, type MarkerEncoder } from './image-blocks.js'

export type GrammarItem = { kind: 'forced'; id: number } | { kind: 'image'; row: number; col: number }

export function imageGrammar(config: KelixConfig, encode: MarkerEncoder, grid: number): GrammarItem[] {
  const items: GrammarItem[] = []
  for (let row = 0; row < grid; row++) {
    for (const id of rowMarker(config, encode, row, grid)) items.push({ kind: 'forced', id })
    for (let col = 0; col < grid; col++) items.push({ kind: 'image', row, col })
  }
  items.push({ kind: 'forced', id: config.special_tokens.vision_end })
  return items
}

/** The id range slot `slot` of an image block may take: sub-codebook `slot`. */
export function subCodebookRange(config: KelixConfig, slot: number): [number, number] {
  return vocabPartRange(config, codebookPart(slot))
}
