/**
 * Encoded image bytes → normalised patches for the visual tokenizer.
 *
 *   bytes ──► magic bytes (format) ──► header (size, orientation) ──► pixel limit
 *         ──► one sharp pipeline: first frame, EXIF orientation, alpha onto white,
 *             sRGB, resize to the plan ──► RGB uint8 ──► patches
 *
 * Every failure is a KelixError invalid_image or image_too_large; sharp's own errors
 * never escape.
 */
import sharp, { type Metadata } from 'sharp'
import type { KelixConfig } from '../model-config.js'
import type { ImageDetail } from '../types.js'
import { ACCEPTED_FORMATS, leadingHex, sniffFormat, type ImageFormat } from './image-format.js'
import { toPatches } from './patches.js'
import { planResize, type ResizePlan } from './resize-plan.js'
import { KelixError } from '../../errors/kelix-error.js'

export interface PreprocessLimits {
  /** Most pixels (width × height of the first frame) a source image may have; checked before decoding. */
  maxPixels: number
}

export interface PreprocessedImage {
  /** LLM positions down the resized image. */
  rows: number
  /** LLM positions across the resized image. */
  cols: number
  /** `[rows·m · cols·m patches, 3·p·p]` flattened, in the layout of `toPatches`. */
  patches: Float32Array
  /** Source size as displayed, after EXIF orientation. */
  sourceWidth: number
  sourceHeight: number
}

interface Header {
  width: number
  height: number
}

/**
 * Decodes one image and cuts it into the visual tokenizer's patches. Resizing
 * uses sharp's `cubic` kernel (Catmull-Rom, the bicubic of PIL that Qwen2-VL's
 * image processor uses), antialiased when shrinking; a large JPEG may first be
 * shrunk by its decoder by a power of two (sharp's default shrink-on-load).
 *
 * @throws KelixError invalid_image (empty, not PNG/JPEG/WEBP/GIF, undecodable) or image_too_large
 */
export async function preprocessImage(
  bytes: Uint8Array,
  config: KelixConfig,
  detail: ImageDetail,
  limits: PreprocessLimits,
): Promise<PreprocessedImage> {
  if (bytes.length === 0) throw new KelixError('invalid_image', 'the image has 0 bytes')
  const format = sniffFormat(bytes)
  if (format === undefined) {
    throw new KelixError(
      'invalid_image',
      `the bytes (starting ${leadingHex(bytes)}) are not ${ACCEPTED_FORMATS.join(', ')}`,
    )
  }
  const header = await readHeader(bytes, format)
  const pixels = header.width * header.height
  if (pixels > limits.maxPixels) {
    throw new KelixError(
      'image_too_large',
      `the image is ${header.width}×${header.height} = ${pixels} pixels, more than the limit of ${limits.maxPixels}`,
    )
  }
  const plan = planResize(header.width, header.height, config.vision, detail)
  const rgb = await decode(bytes, plan, limits.maxPixels)
  return {
    rows: plan.rows,
    cols: plan.cols,
    patches: toPatches(rgb, plan.width, plan.height, config.vision),
    sourceWidth: header.width,
    sourceHeight: header.height,
  }
}

/** Reads only the header, so no limit is needed here: the pixel check comes next. */
async function readHeader(bytes: Uint8Array, format: ImageFormat): Promise<Header> {
  let meta: Metadata
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata()
  } catch (err) {
    throw decodeFailed(err)
  }
  if (meta.format !== format) {
    throw new KelixError('invalid_image', `the bytes look like ${format} but decode as ${meta.format}`)
  }
  // autoOrient holds the size as displayed: sides swapped for orientations 5..8.
  const { width, height } = meta.autoOrient
  if (!(width > 0 && height > 0))
    throw new KelixError('invalid_image', `the header gives an empty size ${width}×${height}`)
  return { width, height }
}

async function decode(bytes: Uint8Array, plan: ResizePlan, maxPixels: number): Promise<Uint8Array> {
  try {
    const { data, info } = await sharp(bytes, {
      // Checked above too; kept so the decoder itself refuses a header that lied.
      limitInputPixels: maxPixels,
      // Truncated JPEGs only warn in libjpeg; refuse them instead of decoding grey.
      failOn: 'warning',
      autoOrient: true,
      // Defaults spelled out: the first frame of a GIF or animated WEBP only.
      pages: 1,
      page: 0,
    })
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .resize(plan.width, plan.height, { fit: 'fill', kernel: 'cubic' })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true })
    if (info.width !== plan.width || info.height !== plan.height || info.channels !== 3) {
      throw new Error(
        `decoded to ${info.width}×${info.height}×${info.channels}, expected ${plan.width}×${plan.height}×3`,
      )
    }
    return data
  } catch (err) {
    throw decodeFailed(err)
  }
}

function decodeFailed(err: unknown): KelixError {
  const message = err instanceof Error ? err.message : String(err)
  if (message.includes('exceeds pixel limit'))
    return new KelixError('image_too_large', `the decoder refused it: ${message}`)
  return new KelixError('invalid_image', message)
}
