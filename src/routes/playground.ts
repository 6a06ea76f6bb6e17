/**
 * `GET /`: the browser playground (playground/index.html, one static page
 * with no build step), read once at start-up. Its own API calls carry the key
 * it asks for, so the page itself is served without one. `--disable-playground`
 * leaves it out.
 */
import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'

/** From src/routes (tsx) and dist/routes (built) alike: the repository's playground/. */
const PAGE = new URL('../../playground/index.html', import.meta.url)

export async function playgroundRoute(app: FastifyInstance): Promise<void> {
  const page = readFileSync(PAGE, 'utf8')
  const schema = {
    summary: 'The browser playground (an HTML page)',
    tags: ['playground'],
    response: { 200: { content: { 'text/html': { schema: { type: 'string' } } } } },
  }
  app.get('/', { schema }, async (_request, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-cache')
      // The page's own script is inline; images are data: URLs; every call goes to this origin.
      .header(
        'content-security-policy',
        "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data: blob:",
      )
      .send(page),
  )
}
