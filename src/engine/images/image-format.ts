/**
 * Which encoded formats the engine accepts, told by their magic bytes. Sniffing
 * before sharp sees the bytes keeps every other format libvips could open
 * (SVG, TIFF, HEIF, PDF...) out of the decoder, whatever its build supports.
 */

export const ACCEPTED_FORMATS = ['png', 'jpeg', 'webp', 'gif'] as const

export type ImageFormat = (typeof ACCEPTED_FORMATS)[number]

const ascii = (text: string) => Array.from(text, (c) => c.charCodeAt(0))

const startsWith = (bytes: Uint8Array, prefix: readonly number[], at = 0) =>
  bytes.length >= at + prefix.length && prefix.every((b, i) => bytes[at + i] === b)

/** The accepted format `bytes` start with, or undefined for anything else. */
export function sniffFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (startsWith(bytes, [0x89, ...ascii('PNG\r\n\x1a\n')])) return 'png'
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return 'jpeg'
  if (startsWith(bytes, ascii('GIF87a')) || startsWith(bytes, ascii('GIF89a'))) return 'gif'
  if (startsWith(bytes, ascii('RIFF')) && startsWith(bytes, ascii('WEBP'), 8)) return 'webp'
  return undefined
}

/** The first bytes as hex, for error messages about unrecognised input. */
export function leadingHex(bytes: Uint8Array, count = 8): string {
  return Array.from(bytes.subarray(0, count), (b) => b.toString(16).padStart(2, '0')).join(' ')
}
