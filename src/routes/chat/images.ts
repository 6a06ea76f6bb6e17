/**
 * Image parts from a request to bytes, before anything is submitted: `data:`
 * URLs decoded here, `attachment://<field>` taken from the multipart files,
 * `https:` handed to the remote fetcher (when the server enables it). Every
 * failure is a 400 naming the part's `param`; the engine still sniffs and
 * decodes the bytes (PNG, JPEG, WEBP, GIF) when the request is submitted.
 */
import type { Attachment } from '../../http/multipart.js'
import type { RemoteImageSource } from '../../http/remote-image.js'
import type { ImageDetailValue, MessageBody } from './schema.js'
import { KelixError } from '../../errors/kelix-error.js'

/** Media types a data URL or file part may declare. */
export const IMAGE_MEDIA_TYPES = ['image/png', 'image/jpeg', 'image/jpg', 'image/webp', 'image/gif'] as const

export interface ImageRef {
  messageIndex: number
  partIndex: number
  url: string
  detail: ImageDetailValue
  /** `messages[i].content[j].image_url.url`. */
  param: string
}

export interface ImageSources {
  /** Multipart file parts by field name, in arrival order; undefined for a JSON request. */
  attachments: ReadonlyMap<string, Attachment> | undefined
  /** Undefined when remote images are disabled. */
  remote: RemoteImageSource | undefined
  maxImageBytes: number
  signal: AbortSignal
}

/** Every image part of the request, in order. */
export function collectImageRefs(messages: readonly MessageBody[]): ImageRef[] {
  const refs: ImageRef[] = []
  messages.forEach((message, messageIndex) => {
    // Only user turns carry images.
    if (message.role !== 'user' || typeof message.content === 'string') return
    message.content.forEach((part, partIndex) => {
      if (part.type !== 'image_url') return
      const param = `messages[${messageIndex}].content[${partIndex}].image_url.url`
      refs.push({ messageIndex, partIndex, url: part.image_url.url, detail: part.image_url.detail ?? 'auto', param })
    })
  })
  return refs
}

const ATTACHMENT = 'attachment://'

/** Field names of the attachments no image part refers to, in arrival order. */
export function unreferencedAttachments(
  refs: readonly ImageRef[],
  attachments: ReadonlyMap<string, Attachment> | undefined,
): string[] {
  if (attachments === undefined) return []
  const referenced = new Set(
    refs.filter((r) => r.url.startsWith(ATTACHMENT)).map((r) => r.url.slice(ATTACHMENT.length)),
  )
  return [...attachments.keys()].filter((name) => !referenced.has(name))
}

/** The bytes of one image part. */
export async function resolveImage(ref: ImageRef, sources: ImageSources): Promise<Uint8Array> {
  const bytes = await fetchBytes(ref, sources)
  if (bytes.length === 0)
    throw new KelixError('invalid_image', `The image at '${ref.param}' is empty.`, { param: ref.param })
  if (bytes.length > sources.maxImageBytes) throw imageTooLarge(ref.param, bytes.length, sources.maxImageBytes)
  if (!hasImageSignature(bytes)) {
    const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ')
    throw new KelixError(
      'invalid_image',
      `The image at '${ref.param}' is not PNG, JPEG, WEBP or GIF (its bytes start ${head}).`,
      { param: ref.param },
    )
  }
  return bytes
}

const ascii = (text: string) => Array.from(text, (c) => c.charCodeAt(0))
const SIGNATURES: Array<{ at: number; bytes: number[] }> = [
  { at: 0, bytes: [0x89, ...ascii('PNG\r\n\x1a\n')] },
  { at: 0, bytes: [0xff, 0xd8, 0xff] },
  { at: 0, bytes: ascii('GIF87a') },
  { at: 0, bytes: ascii('GIF89a') },
  { at: 8, bytes: ascii('WEBP') },
]

/**
 * The magic bytes of an accepted format, checked here only to name the part
 * in the error; the engine sniffs again and decodes.
 */
function hasImageSignature(bytes: Uint8Array): boolean {
  const matches = (s: { at: number; bytes: number[] }) => s.bytes.every((b, i) => bytes[s.at + i] === b)
  return SIGNATURES.some((s) => matches(s) && (s.at === 0 || matches({ at: 0, bytes: ascii('RIFF') })))
}

export function imageTooLarge(param: string, size: number, limit: number): KelixError {
  return new KelixError('image_too_large', `The image at '${param}' has ${size} bytes; the limit is ${limit}.`, {
    param,
  })
}

async function fetchBytes(ref: ImageRef, sources: ImageSources): Promise<Uint8Array> {
  const { url, param } = ref
  if (url.startsWith('data:')) return decodeDataUrl(url, param)
  if (url.startsWith(ATTACHMENT)) return attachmentBytes(url.slice(ATTACHMENT.length), param, sources.attachments)
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new KelixError(
      'invalid_image_url',
      `Invalid URL at '${param}': expected a data: URL, attachment://<field> or an https URL.`,
      { param },
    )
  }
  if (parsed.protocol !== 'https:') {
    throw new KelixError(
      'invalid_image_url',
      `Unsupported URL scheme '${parsed.protocol}' at '${param}': expected a data: URL, attachment://<field> or an https URL.`,
      { param },
    )
  }
  if (sources.remote === undefined) {
    throw new KelixError(
      'invalid_image_url',
      `Remote image URLs are not enabled on this server ('${param}'); send the image as a data: URL or as a multipart file part.`,
      { param },
    )
  }
  try {
    return await sources.remote.fetchImage(parsed, sources.signal)
  } catch (err) {
    throw new KelixError('invalid_image_url', `Could not fetch the image at '${param}': ${(err as Error).message}`, {
      param,
    })
  }
}

function attachmentBytes(
  name: string,
  param: string,
  attachments: ReadonlyMap<string, Attachment> | undefined,
): Uint8Array {
  if (attachments === undefined) {
    throw new KelixError(
      'invalid_value',
      `'${param}' refers to attachment://${name}, but attachments need a multipart/form-data request.`,
      { param },
    )
  }
  const file = attachments.get(name)
  if (file === undefined) {
    const names = [...attachments.keys()]
    const known =
      names.length === 0 ? 'the request has no file parts' : `file parts: ${names.map((n) => `'${n}'`).join(', ')}`
    throw new KelixError(
      'invalid_value',
      `'${param}' refers to attachment://${name}, but there is no file part named '${name}' (${known}).`,
      { param },
    )
  }
  return file.bytes
}

const DATA_URL = /^data:([^;,]*)((?:;[^;,]*)*),/
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

/** `data:image/png;base64,…` → bytes; the media type must be an image type and the payload base64. */
export function decodeDataUrl(url: string, param: string): Uint8Array {
  const header = DATA_URL.exec(url)
  if (header === null)
    throw new KelixError('invalid_image', `Invalid data URL at '${param}': expected data:<media type>;base64,<data>.`, {
      param,
    })
  const mediaType = (header[1] ?? '').trim().toLowerCase()
  const parameters = (header[2] ?? '').split(';').map((p) => p.trim().toLowerCase())
  if (!(IMAGE_MEDIA_TYPES as readonly string[]).includes(mediaType)) {
    const got = mediaType === '' ? 'none' : `'${mediaType}'`
    throw new KelixError(
      'invalid_image',
      `Unsupported media type ${got} in the data URL at '${param}': expected image/png, image/jpeg, image/webp or image/gif.`,
      { param },
    )
  }
  if (!parameters.includes('base64'))
    throw new KelixError(
      'invalid_image',
      `The data URL at '${param}' is not base64-encoded: expected data:${mediaType};base64,<data>.`,
      { param },
    )
  const payload = url.slice(header[0].length).replace(/\s+/g, '')
  if (!BASE64.test(payload) || payload.length % 4 === 1)
    throw new KelixError('invalid_image', `The data URL at '${param}' is not valid base64.`, { param })
  return new Uint8Array(Buffer.from(payload, 'base64'))
}
