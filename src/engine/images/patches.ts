/**
 * Normalised pixels in the layout visual_tokenizer.onnx reads:
 *
 *   image (H × W, RGB interleaved)          pixel_patches [N, 3·p·p], N = (H/p)·(W/p)
 *   ┌────┬────┬────┐                        row 0: patch (0,0)  = [R 0..p²-1 | G ... | B ...]
 *   │ 0  │ 1  │ 2  │  patches numbered      row 1: patch (0,1)
 *   ├────┼────┼────┤  row-major over        ...
 *   │ 3  │ 4  │ 5  │  the patch grid        each patch channel-major [3, p, p], rows of p pixels
 *   └────┴────┴────┘
 */
import type { VisionConfig } from './resize-plan.js'

/**
 * Cuts an RGB image (uint8, `height × width × 3` interleaved) into patches of
 * `patch_size` px, each value normalised to `(v / 255 − mean[c]) / std[c]`.
 * Allocates exactly one Float32Array, the result.
 */
export function toPatches(pixels: Uint8Array, width: number, height: number, vision: VisionConfig): Float32Array {
  const p = vision.patch_size
  if (width % p !== 0 || height % p !== 0)
    throw new RangeError(`image ${width}×${height} is not a whole number of ${p}-px patches`)
  if (pixels.length !== width * height * 3)
    throw new RangeError(`expected ${width * height * 3} RGB bytes for ${width}×${height}, got ${pixels.length}`)
  const means = channelTriple(vision.image_mean, 'image_mean')
  const stds = channelTriple(vision.image_std, 'image_std')
  const gridCols = width / p
  const out = new Float32Array(width * height * 3)
  let o = 0
  for (let patch = 0; patch < out.length / (3 * p * p); patch++) {
    const top = Math.floor(patch / gridCols) * p
    const left = (patch % gridCols) * p
    for (let c = 0; c < 3; c++) {
      const mean = means[c] as number
      const std = stds[c] as number
      for (let y = top; y < top + p; y++) {
        let i = (y * width + left) * 3 + c
        for (let x = 0; x < p; x++, i += 3) out[o++] = ((pixels[i] as number) / 255 - mean) / std
      }
    }
  }
  return out
}

function channelTriple(values: readonly number[], name: string): [number, number, number] {
  const [a, b, c] = values
  if (a === undefined || b === undefined || c === undefined)
    throw new RangeError(`vision.${name} needs 3 values, got ${values.length}`)
  return [a, b, c]
}
