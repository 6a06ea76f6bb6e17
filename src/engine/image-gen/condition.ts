/**
 * The DiT's condition: the LLM's last-layer hidden states (before the final norm) over the generated
 * span <|vision_start|> … <|vision_end|>, zero-padded to `condition_length` with a mask.
 */
import type { ImageGenerationKelixConfig, KelixConfig } from '../model-config.js'
import { rowMarker, type MarkerEncoder } from '../prompt/image-blocks.js'

export interface PaddedCondition {
  /** [condition_length · hidden] float32: the span's hidden states, then zeros. */
  condition: Float32Array
  /** [condition_length]: 1 at the span's positions, 0 at the padding. */
  mask: ArrayLike<number>
}

/**
 * Pads one span's hidden states, `span` = [length · hidden] row-major, to `condition_length`.
 *
 * @throws RangeError when the span is empty, not whole rows of `hidden`, or longer than `condition_length`
 */
export function padCondition(config: ImageGenerationKelixConfig, span: Float32Array): PaddedCondition {
  const hidden = config.llm.hidden_size
  const limit = config.image_generation.condition_length
  const length = span.length / hidden
  if (!Number.isInteger(length) || length < 1)
    throw new RangeError(`${span.length} condition values are not whole rows of hidden size ${hidden}`)
  if (length > limit)
    throw new RangeError(`the condition span has ${length} positions, more than condition_length ${limit}`)
  const condition = new Float32Array(limit * hidden)
  condition.set(span)
  const mask = new Uint8Array(limit)
  mask.fill(1, 0, length)
  return { condition, mask }
}

/**
 * The exact length of the generated span of a grid×grid image: <|vision_start|>, then per row its
 * marker (<|mm_pos_start|> "row,cols" <|mm_pos_end|>) and `grid` image blocks, then <|vision_end|>.
 * It must not exceed `condition_length` (the converter checks it); config.json only checks a lower
 * bound (`minimumImageSpan`).
 */
export function imageSpanLength(config: KelixConfig, grid: number, encode: MarkerEncoder): number {
  let length = 2
  for (let row = 0; row < grid; row++) length += rowMarker(config, encode, row, grid).length + grid
  return length
}
