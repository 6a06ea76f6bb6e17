/**
 * Writes one image into a block list, between the template's
 * <|vision_start|> and <|vision_end|>:
 *
 *   <|mm_pos_start|> 0,C <|mm_pos_end|>  [c0 … c7] × C     (marker text: config.json vision.row_marker)
 *   <|mm_pos_start|> 1,C <|mm_pos_end|>  [c0 … c7] × C
 *   …
 *
 * Each id of a row marker is a text block. Code c of sub-codebook k becomes
 * the unified id visual_id_offset + k·codebook_size + c.
 */
import type { KelixConfig } from '../model-config.js'
import type { BlockBuffer } from './block-buffer.js'

export interface ImageCodes {
  rows: number
  cols: number
  /** rows × cols × num_codebooks codes, row-major. */
  codes: Int32Array
}

/** Token ids of a row marker's text ("row,columns"), without the brackets. */
export type MarkerEncoder = (text: string) => number[]

/** The row marker's text when config.json does not set `vision.row_marker`. */
export const DEFAULT_ROW_MARKER = '{row},{cols}'

/** The text between a row's brackets: `vision.row_marker` with `{row}` (0-based) and `{cols}` filled in. */
export function rowMarkerText(config: KelixConfig, row: number, cols: number): string {
  return (config.vision.row_marker ?? DEFAULT_ROW_MARKER)
    .replaceAll('{row}', String(row))
    .replaceAll('{cols}', String(cols))
}

export function rowMarker(config: KelixConfig, encode: MarkerEncoder, row: number, cols: number): number[] {
  const { mm_pos_start: open, mm_pos_end: close } = config.special_tokens
  return [open, ...encode(rowMarkerText(config, row, cols)), close]
}

/** Appends an image's row markers and blocks; returns the number of blocks written. */
export function writeImageBlocks(
  out: BlockBuffer,
  config: KelixConfig,
  encode: MarkerEncoder,
  image: ImageCodes,
): number {
  const { num_codebooks: books, codebook_size: size, visual_id_offset: offset } = config.vocab
  const before = out.length
  const block = new Array<number>(books)
  for (let r = 0; r < image.rows; r++) {
    for (const id of rowMarker(config, encode, r, image.cols)) out.push([id])
    for (let c = 0; c < image.cols; c++) {
      const at = (r * image.cols + c) * books
      for (let k = 0; k < books; k++) block[k] = offset + k * size + (image.codes[at + k] as number)
      out.push(block)
    }
  }
  return out.length - before
}
