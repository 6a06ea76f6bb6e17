/**
 * Latents → pixels → PNG: vae_decoder.onnx gives [3, size, size] in [−1, 1]; this maps it to 8-bit
 * interleaved RGB and encodes it with fixed PNG settings, so the same latents give the same bytes.
 */
import ort from 'onnxruntime-node'
import sharp from 'sharp'
import { MODEL_FILES } from '../graph-signatures.js'
import { checkedFloat } from './checked-output.js'
import type { ImageGenModel } from './flow-matching.js'

/** Decodes each image's latents [C · s · s] in one vae_decoder.onnx call; returns RGB [size · size · 3] each. */
export async function decodeImages(model: ImageGenModel, latents: readonly Float32Array[]): Promise<Uint8Array[]> {
  if (latents.length === 0) return []
  const { latent_channels: channels, latent_size: side, image_size: size } = model.config.image_generation
  const perImage = channels * side * side
  const batch = new Float32Array(latents.length * perImage)
  latents.forEach((one, b) => {
    if (one.length !== perImage)
      throw new RangeError(`latents have ${one.length} values, expected ${channels}·${side}·${side} = ${perImage}`)
    batch.set(one, b * perImage)
  })
  const dims = [latents.length, channels, side, side]
  let outputs: ort.InferenceSession.ReturnType
  try {
    outputs = await model.vaeDecoder.run({ latents: new ort.Tensor('float32', batch, dims) })
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    throw new Error(`${MODEL_FILES.vaeDecoder} failed on latents float32 [${dims.join(', ')}]: ${message}`, {
      cause: err,
    })
  }
  const image = checkedFloat(outputs.image, 'image', [latents.length, 3, size, size], MODEL_FILES.vaeDecoder)
  const planes = 3 * size * size
  return latents.map((_, b) => toRgb(image.subarray(b * planes, (b + 1) * planes), size))
}

/** Decodes one image's latents [C · s · s]; returns RGB [size · size · 3]. */
export async function decodeImage(model: ImageGenModel, latents: Float32Array): Promise<Uint8Array> {
  return (await decodeImages(model, [latents]))[0] as Uint8Array
}

/**
 * Channel-major [3, size, size] in [−1, 1] → interleaved 8-bit RGB, as the reference demo makes its
 * image: round(clamp(v/2 + 0.5, 0, 1)·255) in float32, rounding half to even (numpy's `round`).
 */
export function toRgb(planes: Float32Array, size: number): Uint8Array {
  const pixels = size * size
  const rgb = new Uint8Array(pixels * 3)
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < pixels; p++) {
      const unit = Math.fround((planes[c * pixels + p] as number) / 2 + 0.5)
      const clamped = unit < 0 ? 0 : unit > 1 ? 1 : unit
      rgb[p * 3 + c] = roundHalfEven(Math.fround(clamped * 255))
    }
  }
  return rgb
}

function roundHalfEven(x: number): number {
  const floor = Math.floor(x)
  const rest = x - floor
  if (rest !== 0.5) return Math.round(x)
  return floor % 2 === 0 ? floor : floor + 1
}

/** PNG bytes of an RGB image [size · size · 3]; fixed settings (no metadata, no palette, zlib level 6). */
export async function encodePng(rgb: Uint8Array, size: number): Promise<Uint8Array> {
  if (rgb.length !== size * size * 3) throw new RangeError(`${rgb.length} bytes are not a ${size}×${size} RGB image`)
  const png = await sharp(rgb, { raw: { width: size, height: size, channels: 3 } })
    .png({ compressionLevel: 6, adaptiveFiltering: false, palette: false, progressive: false })
    .toBuffer()
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength)
}
