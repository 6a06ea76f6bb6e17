/**
 * Vocabulary parts: the id ranges one slot of a block can take, as block_decoder.onnx's
 * `vocab_part` input numbers them. A slot only ever samples inside one part, so a graph
 * that takes `vocab_part` computes the LM head for that part alone.
 *
 *   ids   [0 ……… text) [gap) [codebook 0) [codebook 1) … [codebook K−1)
 *   part       0               1            2                K
 *
 * The gap (ids between the text vocabulary and `visual_id_offset`, if any) is in no part:
 * no slot samples it.
 */
import type { KelixConfig } from './model-config.js'

/** A `vocab_part` value: 0 = text ids, k = 1 … num_codebooks = sub-codebook k − 1. */
export type VocabPart = number

export const TEXT_PART: VocabPart = 0

/** The part of sub-codebook `codebook` (slot `codebook` of an image block). */
export function codebookPart(codebook: number): VocabPart {
  return codebook + 1
}

/** The unified ids `[lo, hi)` of `part`; its logits hold id `lo + i` at index `i`. */
export function vocabPartRange(config: KelixConfig, part: VocabPart): [number, number] {
  const { text_vocab_size: text, num_codebooks: books, codebook_size: size, visual_id_offset: offset } = config.vocab
  if (part === TEXT_PART) return [0, text]
  if (!Number.isInteger(part) || part < 1 || part > books)
    throw new RangeError(`vocab part ${part} is not 0 … ${books}`)
  const lo = offset + (part - 1) * size
  return [lo, lo + size]
}
