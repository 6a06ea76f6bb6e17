/**
 * Remote image downloads against real local HTTPS servers (a self-signed
 * certificate for images.test, other.test, internal.test and 127.0.0.1 in
 * fixtures/). With the default policy every local address is refused, even
 * when allow-listed; tests that need a successful download swap in a resolver
 * that maps the test names to 127.0.0.1 and a policy that admits only that.
 */
import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { forbiddenAddressReason } from '../../src/http/address-policy.js'
import {
  RemoteImageFetcher,
  hostAllowed,
  type RemoteImageOptions,
  type ResolvedAddress,
} from '../../src/http/remote-image.js'
import { patternPng } from '../helpers/images.js'

const cert = readFileSync(new URL('./fixtures/test-tls.crt', import.meta.url))
const key = readFileSync(new URL('./fixtures/test-tls.key', import.meta.url))

type Handler = Parameters<typeof createServer>[1]

async function httpsServer(t: Test, handler: Handler): Promise<number> {
  const server: Server = createServer({ cert, key }, handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  t.teardown(() => server.closeAllConnections())
  return (server.address() as AddressInfo).port
}

const TEST_NAMES: Record<string, string> = {
  'images.test': '127.0.0.1',
  'other.test': '127.0.0.1',
  'cdn.images.test': '127.0.0.1',
  'internal.test': '10.0.0.7',
}

/** A fetcher whose resolver knows the test names; the policy admits 127.0.0.1 (the test servers) and nothing else local. */
function testFetcher(overrides: Partial<RemoteImageOptions> = {}, lookups: string[] = []): RemoteImageFetcher {
  return new RemoteImageFetcher({
    allowedHosts: ['images.test', '*.images.test', 'internal.test'],
    timeoutMs: 2000,
    maxBytes: 100_000,
    maxRedirects: 3,
    ca: cert,
    resolve: async (hostname): Promise<ResolvedAddress[]> => {
      lookups.push(hostname)
      const address = TEST_NAMES[hostname]
      if (address === undefined) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' })
      return [{ address, family: 4 }]
    },
    addressPolicy: (address) => (address === '127.0.0.1' ? undefined : forbiddenAddressReason(address)),
    ...overrides,
  })
}

const fetchImage = (fetcher: RemoteImageFetcher, url: string) =>
  fetcher.fetchImage(new URL(url), new AbortController().signal)

t.test('an allow-listed host on an allowed address is downloaded, through the checked address', async (t) => {
  const png = await patternPng(8, 8)
  const port = await httpsServer(t, (req, res) => {
    t.equal(req.headers.host, `images.test:${port}`)
    res.writeHead(200, { 'content-type': 'image/png' }).end(png)
  })
  const lookups: string[] = []
  const bytes = await fetchImage(testFetcher({}, lookups), `https://images.test:${port}/cat.png`)
  t.same(Buffer.from(bytes), Buffer.from(png))
  t.same(
    lookups,
    ['images.test'],
    'resolved once; the connection used that answer (the system resolver knows no images.test)',
  )
})

t.test('with the default policy a loopback URL is refused even when allow-listed', async (t) => {
  let hits = 0
  const port = await httpsServer(t, (_req, res) => {
    hits++
    res.end('x')
  })
  const fetcher = new RemoteImageFetcher({
    allowedHosts: ['localhost', '127.0.0.1', '::1'],
    timeoutMs: 2000,
    maxBytes: 1000,
    maxRedirects: 3,
    ca: cert,
  })
  await t.rejects(fetchImage(fetcher, `https://127.0.0.1:${port}/a.png`), {
    name: 'RemoteImageError',
    message: "'127.0.0.1' resolves to 127.0.0.1, a loopback address; images are only fetched from public addresses",
  })
  await t.rejects(fetchImage(fetcher, `https://[::1]:${port}/a.png`), {
    message: "'::1' resolves to ::1, a loopback address; images are only fetched from public addresses",
  })
  await t.rejects(fetchImage(fetcher, `https://localhost:${port}/a.png`), {
    message: /^'localhost' resolves to (127\.0\.0\.1|::1), a loopback address/,
  })
  t.equal(hits, 0, 'no request reached the server')
})

t.test('a name that resolves to a private address is refused after resolution', async (t) => {
  await t.rejects(fetchImage(testFetcher(), 'https://internal.test/a.png'), {
    message: "'internal.test' resolves to 10.0.0.7, a private address; images are only fetched from public addresses",
  })
})

t.test('a name with one private address among public ones is refused', async (t) => {
  const fetcher = testFetcher({
    resolve: async () => [
      { address: '8.8.8.8', family: 4 },
      { address: '169.254.169.254', family: 4 },
    ],
  })
  await t.rejects(fetchImage(fetcher, 'https://images.test/a.png'), {
    message:
      "'images.test' resolves to 169.254.169.254, a link-local address; images are only fetched from public addresses",
  })
})

t.test('hosts off the allow-list, http, and URLs with credentials are refused before any lookup', async (t) => {
  const lookups: string[] = []
  const fetcher = testFetcher({}, lookups)
  await t.rejects(fetchImage(fetcher, 'https://evil.example/a.png'), {
    message: "the host 'evil.example' is not on this server's allow-list",
  })
  await t.rejects(fetchImage(fetcher, 'https://images.test.evil.example/a.png'), {
    message: "the host 'images.test.evil.example' is not on this server's allow-list",
  })
  await t.rejects(fetchImage(fetcher, 'http://images.test/a.png'), {
    message: 'http URLs are not fetched (http://images.test); only https',
  })
  await t.rejects(fetchImage(fetcher, 'https://user:pw@images.test/a.png'), {
    message: 'URLs with credentials are not fetched',
  })
  t.same(lookups, [])
})

t.test('redirects are followed and every hop is checked again', async (t) => {
  const png = await patternPng(4, 4)
  const port = await httpsServer(t, (req, res) => {
    const to = (location: string) => res.writeHead(302, { location }).end()
    if (req.url === '/ok') return to(`https://cdn.images.test:${port}/final`)
    if (req.url === '/final') return res.writeHead(200).end(png)
    if (req.url === '/off-list') return to(`https://other.test:${port}/final`)
    if (req.url === '/to-http') return to(`http://images.test:${port}/final`)
    if (req.url === '/to-private') return to('https://internal.test/final')
    if (req.url === '/to-loopback') return to(`https://127.0.0.1:${port}/final`)
    if (req.url?.startsWith('/loop')) return to(`/loop${Number(req.url.slice(5)) + 1}`)
    res.writeHead(404).end()
  })
  const lookups: string[] = []
  t.same(Buffer.from(await fetchImage(testFetcher({}, lookups), `https://images.test:${port}/ok`)), Buffer.from(png))
  t.same(lookups, ['images.test', 'cdn.images.test'])
  const fetcher = testFetcher({ allowedHosts: ['images.test', '*.images.test', 'internal.test', '127.0.0.1'] })
  await t.rejects(fetchImage(fetcher, `https://images.test:${port}/off-list`), {
    message: "the host 'other.test' is not on this server's allow-list",
  })
  await t.rejects(fetchImage(fetcher, `https://images.test:${port}/to-http`), {
    message: `http URLs are not fetched (http://images.test:${port}); only https`,
  })
  await t.rejects(fetchImage(fetcher, `https://images.test:${port}/to-private`), {
    message: "'internal.test' resolves to 10.0.0.7, a private address; images are only fetched from public addresses",
  })
  await t.rejects(fetchImage(fetcher, `https://images.test:${port}/loop1`), { message: 'more than 3 redirects' })
  const strict = testFetcher({
    allowedHosts: ['images.test', '127.0.0.1'],
    addressPolicy: (a) => (a === '127.0.0.1' ? 'a loopback address' : undefined),
    resolve: async () => [{ address: '93.184.216.34', family: 4 }],
  })
  await t.rejects(fetchImage(strict, `https://127.0.0.1:${port}/x`), {
    message: "'127.0.0.1' resolves to 127.0.0.1, a loopback address; images are only fetched from public addresses",
  })
})

t.test('bodies over the byte cap are refused, whether declared or streamed', async (t) => {
  const port = await httpsServer(t, (req, res) => {
    if (req.url === '/declared') return res.writeHead(200, { 'content-length': '5000' }).end(Buffer.alloc(5000))
    res.writeHead(200)
    res.write(Buffer.alloc(3000))
    res.end(Buffer.alloc(3000))
  })
  const fetcher = testFetcher({ maxBytes: 4096 })
  await t.rejects(fetchImage(fetcher, `https://images.test:${port}/declared`), {
    message: 'the image is 5000 bytes; the limit is 4096',
  })
  await t.rejects(fetchImage(fetcher, `https://images.test:${port}/chunked`), {
    message: 'the image is larger than the limit of 4096 bytes',
  })
})

t.test(
  'a server that does not answer in time, an error status, and a bad certificate are clear failures',
  async (t) => {
    const port = await httpsServer(t, (req, res) => {
      if (req.url === '/slow') return
      if (req.url === '/stall') {
        res.writeHead(200)
        res.write('GIF89a')
        return
      }
      res.writeHead(404).end('no')
    })
    const fetcher = testFetcher({ timeoutMs: 300 })
    await t.rejects(fetchImage(fetcher, `https://images.test:${port}/slow`), {
      message: 'no complete answer within 300 ms',
    })
    await t.rejects(fetchImage(fetcher, `https://images.test:${port}/stall`), {
      message: 'no complete answer within 300 ms',
    })
    await t.rejects(fetchImage(fetcher, `https://images.test:${port}/missing`), { message: 'the server answered 404' })
    const untrusting = testFetcher({ ca: undefined })
    await t.rejects(fetchImage(untrusting, `https://images.test:${port}/x`), {
      message: /^the download failed \((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)\)$/,
    })
    await t.rejects(fetchImage(testFetcher(), 'https://nowhere.images.test/x'), {
      message: "the host 'nowhere.images.test' could not be resolved",
    })
  },
)

t.test('a client that leaves stops the download', async (t) => {
  const controller = new AbortController()
  // The client leaves once the download is under way: the image server has the request and never answers.
  const port = await httpsServer(t, () => controller.abort())
  const pending = testFetcher({ timeoutMs: 5000 }).fetchImage(
    new URL(`https://images.test:${port}/slow`),
    controller.signal,
  )
  await t.rejects(pending, { message: 'the client closed the request' })
})

t.test('allow-list patterns match exact hosts and subdomains of a wildcard only', async (t) => {
  t.ok(hostAllowed('Images.Example.com', ['images.example.com']))
  t.ok(hostAllowed('a.b.example.com', ['*.example.com']))
  t.notOk(hostAllowed('example.com', ['*.example.com']))
  t.notOk(hostAllowed('badexample.com', ['*.example.com']))
  t.notOk(hostAllowed('images.example.com.evil.net', ['images.example.com']))
})
