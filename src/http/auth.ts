/**
 * Bearer API keys. Checked in `onRequest`, before the body is read, so an
 * unauthenticated client cannot make the server parse a large body. Keys are
 * compared as SHA-256 digests with `timingSafeEqual`, against every key with
 * no early exit, so timing tells nothing about a key's content or position.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { KelixError } from '../errors/kelix-error.js'

export interface AuthOptions {
  /** Accepted keys; empty disables authentication. */
  apiKeys: readonly string[]
  /** Require a key on /health/*. */
  authHealth: boolean
  /** Require a key on /metrics. */
  authMetrics: boolean
}

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest()

/** True when `presented` equals one of `keys`, in time independent of which. */
export function keyMatches(presented: string, keys: readonly Buffer[]): boolean {
  const candidate = digest(presented)
  let match = false
  for (const key of keys) match = timingSafeEqual(candidate, key) || match
  return match
}

/** Paths open without a key, as configured. */
export function isOpenPath(path: string, options: Pick<AuthOptions, 'authHealth' | 'authMetrics'>): boolean {
  if (path.startsWith('/health/')) return !options.authHealth
  if (path === '/metrics') return !options.authMetrics
  // The playground page asks for a key itself and sends it with its API calls.
  return path === '/openapi.json' || path === '/'
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  if (header === undefined) return undefined
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header)
  return match?.[1]
}

export function installAuth(app: FastifyInstance, options: AuthOptions): void {
  if (options.apiKeys.length === 0) return
  const keys = options.apiKeys.map(digest)
  app.addHook('onRequest', async (request, reply) => {
    if (isOpenPath(request.url.split('?')[0] ?? '', options)) return
    const token = bearerToken(request)
    if (token !== undefined && keyMatches(token, keys)) return
    void reply.header('www-authenticate', 'Bearer')
    if (token === undefined) {
      throw new KelixError(
        'invalid_api_key',
        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
      )
    }
    throw new KelixError('invalid_api_key', 'Incorrect API key provided.')
  })
}
