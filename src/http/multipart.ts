/**
 * `multipart/form-data` chat requests: a field `request` holds the usual JSON
 * body, file parts hold images. `readMultipartBody` runs as the route's
 * `preValidation` hook, so the JSON then goes through the same schema as a
 * plain JSON request, and the files wait in `attachmentsOf(request)`.
 *
 *   --b  name="request"              {"model": …, "messages": [… "attachment://photo" …]}
 *   --b  name="photo"; filename=…    <bytes>      referenced by attachment://photo
 *   --b  name="more"; filename=…     <bytes>      unreferenced: appended to the last user message
 */
import multipart from '@fastify/multipart'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { KelixError } from '../errors/kelix-error.js'

export interface MultipartLimits {
  /** Most file parts (413 past it). */
  maxFiles: number
  /** Largest file part, bytes (413 past it). */
  maxFileBytes: number
  /** Largest `request` field, bytes (413 past it). */
  maxFieldBytes: number
}

/** A file part of a multipart request. */
export interface Attachment {
  bytes: Uint8Array
  filename: string | undefined
  mimetype: string
}

const attachments = new WeakMap<FastifyRequest, Map<string, Attachment>>()

/** The file parts of a multipart request, by field name in arrival order; undefined for JSON. */
export function attachmentsOf(request: FastifyRequest): ReadonlyMap<string, Attachment> | undefined {
  return attachments.get(request)
}

export async function installMultipart(app: FastifyInstance, limits: MultipartLimits): Promise<void> {
  await app.register(multipart, {
    throwFileSizeLimit: true,
    // Only `request` is expected among the fields; a few more get a clearer error from readMultipartBody than a 413.
    limits: {
      files: limits.maxFiles + 1,
      fileSize: Math.max(limits.maxFileBytes, limits.maxFieldBytes),
      fieldSize: limits.maxFieldBytes,
      fields: 4,
      parts: limits.maxFiles + 5,
    },
  })
}

/** The route's `preValidation`: for a multipart request, sets `request.body` from the `request` field and keeps the files. */
export function multipartBodyReader(limits: MultipartLimits): (request: FastifyRequest) => Promise<void> {
  return (request) => readMultipartBody(request, limits)
}

async function readMultipartBody(request: FastifyRequest, limits: MultipartLimits): Promise<void> {
  if (!request.isMultipart()) return
  const files = new Map<string, Attachment>()
  let json: string | undefined
  for await (const part of request.parts()) {
    if (part.type === 'file' && part.fieldname === 'request') {
      // `curl -F request=@body.json` and a Blob in FormData send the JSON as a file.
      json = (await part.toBuffer()).toString('utf8')
    } else if (part.type === 'file') {
      if (files.has(part.fieldname))
        throw new KelixError(
          'invalid_request_error',
          `Two file parts are named '${part.fieldname}'; file part names must be unique.`,
          { param: part.fieldname },
        )
      if (files.size === limits.maxFiles)
        throw new KelixError(
          'request_too_large',
          `The request has more than ${limits.maxFiles} file parts; this server accepts at most ${limits.maxFiles} images per request.`,
        )
      const bytes = new Uint8Array(await part.toBuffer())
      if (bytes.length > limits.maxFileBytes)
        throw new KelixError(
          'request_too_large',
          `The file part '${part.fieldname}' has more than ${limits.maxFileBytes} bytes; this server accepts at most ${limits.maxFileBytes} per image.`,
          { param: part.fieldname },
        )
      files.set(part.fieldname, { bytes, filename: part.filename, mimetype: part.mimetype })
    } else if (part.fieldname === 'request') {
      if (part.valueTruncated)
        throw new KelixError('request_too_large', "The multipart field 'request' is larger than the body limit.", {
          param: 'request',
        })
      json = typeof part.value === 'string' ? part.value : JSON.stringify(part.value)
    } else {
      throw new KelixError(
        'unknown_parameter',
        `Unknown multipart field '${part.fieldname}': the JSON body goes in a field named 'request', images in file parts.`,
        { param: part.fieldname },
      )
    }
  }
  if (json === undefined)
    throw new KelixError(
      'missing_required_parameter',
      "Missing required multipart field 'request' holding the JSON body.",
      { param: 'request' },
    )
  try {
    request.body = JSON.parse(json)
  } catch (err) {
    throw new KelixError(
      'invalid_request_error',
      `The multipart field 'request' is not valid JSON: ${(err as Error).message}`,
      { param: 'request' },
    )
  }
  attachments.set(request, files)
}
