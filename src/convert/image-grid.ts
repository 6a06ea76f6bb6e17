/**
 * The image grid the LLM writes and the condition it must fit: the span
 * <|vision_start|> … <|vision_end|> of a grid×grid image (row markers included)
 * is the DiT's condition, so it may not exceed the DiT's condition length.
 */
import type { KelixConfig } from '../engine/model-config.js'
import { imageSpanLength } from '../engine/image-gen/condition.js'
import type { TokenizerData } from '../engine/model.js'
import { TextTokenizer } from '../engine/text/tokenizer.js'
import { KelixError } from '../errors/kelix-error.js'

/** Kelix's trained grid: 18×18 positions (504 px ÷ 28), a 442-position condition with its row markers. */
export const KELIX_IMAGE_GRID = 18

/** Span lengths by grid for this tokenizer and row marker. */
export function spanLengths(config: KelixConfig, tokenizer: TokenizerData): (grid: number) => number {
  const text = new TextTokenizer(tokenizer, config)
  const encode = (marker: string) => text.encodeOrdinary(marker)
  return (grid) => imageSpanLength(config, grid, encode)
}

/**
 * The grid to serve: `requested` when its span fits `conditionLength` (refused otherwise), else
 * Kelix's 18 or, when the condition is shorter than its span, the largest grid that fits.
 */
export function chooseGrid(
  spanOf: (grid: number) => number,
  conditionLength: number,
  requested: number | undefined,
): number {
  if (requested !== undefined) {
    const span = spanOf(requested)
    if (span > conditionLength) {
      throw new KelixError(
        'CONVERT_OPTION_INVALID',
        `--image-grid ${requested} writes a ${span}-position span, longer than the DiT's condition length ${conditionLength} (rows of y_embedder.y_embedding); the largest grid that fits is ${largestFitting(spanOf, conditionLength, requested)}`,
      )
    }
    return requested
  }
  const grid = largestFitting(spanOf, conditionLength, KELIX_IMAGE_GRID)
  if (grid === 0)
    throw new KelixError(
      'CHECKPOINT_CONFIG_INVALID',
      `the DiT's condition length ${conditionLength} (rows of y_embedder.y_embedding) is shorter than the span of a 1×1 image (${spanOf(1)} positions)`,
    )
  return grid
}

/** The largest grid ≤ `limit` whose span fits, or 0. */
function largestFitting(spanOf: (grid: number) => number, conditionLength: number, limit: number): number {
  for (let grid = limit; grid >= 1; grid--) if (spanOf(grid) <= conditionLength) return grid
  return 0
}
