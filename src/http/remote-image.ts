/**
 * Downloads `https` image URLs for requests, when the server enables it, and
 * refuses everything that could turn the server into a proxy into its own
 * network (SSRF):
 *
 *   url ─► https only, no credentials, host on the allow-list
 *       ─► resolve every address ─► refuse if any is loopback/private/link-local/… (address-policy.ts)
 *       ─► connect to the checked address (TLS still verified against the host name)
 *       ─► 3xx: the Location goes through every check again (at most maxRedirects)
 *       ─► 200: read at most maxBytes; the whole thing within timeoutMs
 *
 * Failures reject with a `RemoteImageError` whose message is meant for the client.
 */
import { lookup as dnsLookup } from 'node:dns/promises'
import type { IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { isIP, type LookupFunction } from 'node:net'
import { forbiddenAddressReason } from './address-policy.js'

export class RemoteImageError extends Error {
  override readonly name = 'RemoteImageError'
}

export interface ResolvedAddress {
  address: string
  family: number
}

export interface RemoteImageOptions {
  /** Host names (lower case); `*.example.com` matches any subdomain of example.com. */
  allowedHosts: readonly string[]
  timeoutMs: number
  maxBytes: number
  maxRedirects: number
  /** Name resolution; default: the system resolver, every address. */
  resolve?: (hostname: string) => Promise<ResolvedAddress[]>
  /** Why an address is refused, or undefined to allow it; default: public unicast only. */
  addressPolicy?: (address: string) => string | undefined
  /** Extra trusted certificate authorities (PEM); default: Node's bundle. */
  ca?: string | Buffer
}

const REDIRECTS = new Set([301, 302, 303, 307, 308])

const systemResolve = async (hostname: string): Promise<ResolvedAddress[]> =>
  dnsLookup(hostname, { all: true, verbatim: true })

export function hostAllowed(hostname: string, allowed: readonly string[]): boolean {
  const host = hostname.toLowerCase()
  return allowed.some((pattern) =>
    pattern.startsWith('*.') ? host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1 : host === pattern,
  )
}

/** Downloads an allowed remote image; rejects with a message fit for the client. */
export interface RemoteImageSource {
  fetchImage(url: URL, signal: AbortSignal): Promise<Uint8Array>
}

export class RemoteImageFetcher implements RemoteImageSource {
  private readonly resolve: (hostname: string) => Promise<ResolvedAddress[]>
  private readonly addressPolicy: (address: string) => string | undefined

  constructor(private readonly options: RemoteImageOptions) {
    this.resolve = options.resolve ?? systemResolve
    this.addressPolicy = options.addressPolicy ?? forbiddenAddressReason
  }

  async fetchImage(url: URL, signal: AbortSignal): Promise<Uint8Array> {
    const deadline = AbortSignal.any([signal, AbortSignal.timeout(this.options.timeoutMs)])
    try {
      let current = url
      for (let redirects = 0; ; redirects++) {
        const hostname = this.checkUrl(current)
        const address = await this.checkedAddress(hostname)
        const response = await this.get(current, hostname, address, deadline)
        if (!REDIRECTS.has(response.statusCode ?? 0)) return await this.readBody(response, deadline)
        response.resume()
        const location = response.headers.location
        if (location === undefined)
          throw new RemoteImageError(`the server answered ${response.statusCode} without a Location`)
        if (redirects >= this.options.maxRedirects)
          throw new RemoteImageError(`more than ${this.options.maxRedirects} redirects`)
        current = new URL(location, current)
      }
    } catch (err) {
      if (err instanceof RemoteImageError) throw err
      if (signal.aborted) throw new RemoteImageError('the client closed the request')
      if (deadline.aborted) throw new RemoteImageError(`no complete answer within ${this.options.timeoutMs} ms`)
      throw new RemoteImageError(
        `the download failed (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      )
    }
  }

  /** The host name to connect to, once the URL passes the static checks. */
  private checkUrl(url: URL): string {
    if (url.protocol !== 'https:')
      throw new RemoteImageError(`${url.protocol.slice(0, -1)} URLs are not fetched (${url.origin}); only https`)
    if (url.username !== '' || url.password !== '') throw new RemoteImageError('URLs with credentials are not fetched')
    const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1')
    if (!hostAllowed(hostname, this.options.allowedHosts))
      throw new RemoteImageError(`the host '${hostname}' is not on this server's allow-list`)
    return hostname
  }

  /** Resolves the name and checks every address; the first is the one connected to. */
  private async checkedAddress(hostname: string): Promise<ResolvedAddress> {
    let addresses: ResolvedAddress[]
    if (isIP(hostname) !== 0) addresses = [{ address: hostname, family: isIP(hostname) }]
    else {
      try {
        addresses = await this.resolve(hostname)
      } catch {
        throw new RemoteImageError(`the host '${hostname}' could not be resolved`)
      }
    }
    if (addresses.length === 0) throw new RemoteImageError(`the host '${hostname}' could not be resolved`)
    for (const { address } of addresses) {
      const reason = this.addressPolicy(address)
      if (reason !== undefined)
        throw new RemoteImageError(
          `'${hostname}' resolves to ${address}, ${reason}; images are only fetched from public addresses`,
        )
    }
    return addresses[0]!
  }

  private get(url: URL, hostname: string, address: ResolvedAddress, signal: AbortSignal): Promise<IncomingMessage> {
    const pinned: LookupFunction = (_host, options, callback) => {
      if (options.all) (callback as unknown as (err: null, addresses: ResolvedAddress[]) => void)(null, [address])
      else callback(null, address.address, address.family)
    }
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        {
          host: hostname,
          port: url.port === '' ? 443 : Number(url.port),
          path: `${url.pathname}${url.search}`,
          method: 'GET',
          headers: { accept: 'image/png, image/jpeg, image/webp, image/gif', 'user-agent': 'kelix-serve' },
          lookup: pinned,
          servername: isIP(hostname) === 0 ? hostname : undefined,
          agent: false,
          signal,
          ...(this.options.ca === undefined ? {} : { ca: this.options.ca }),
        },
        resolve,
      )
      req.once('error', reject)
      req.end()
    })
  }

  private async readBody(response: IncomingMessage, signal: AbortSignal): Promise<Uint8Array> {
    const { maxBytes } = this.options
    if (response.statusCode !== 200) {
      response.resume()
      throw new RemoteImageError(`the server answered ${response.statusCode}`)
    }
    const declared = Number(response.headers['content-length'])
    if (Number.isFinite(declared) && declared > maxBytes) {
      response.destroy()
      throw new RemoteImageError(`the image is ${declared} bytes; the limit is ${maxBytes}`)
    }
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of response as AsyncIterable<Buffer>) {
      size += chunk.length
      if (size > maxBytes) {
        response.destroy()
        throw new RemoteImageError(`the image is larger than the limit of ${maxBytes} bytes`)
      }
      chunks.push(chunk)
      if (signal.aborted) break
    }
    if (signal.aborted) throw signal.reason
    return new Uint8Array(Buffer.concat(chunks))
  }
}
