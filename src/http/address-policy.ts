/**
 * Which IP addresses a remote image may be fetched from: public unicast only.
 * Loopback, private, link-local (cloud metadata lives at 169.254.169.254),
 * unique-local, shared (CGNAT), multicast, documentation and reserved ranges
 * are refused, and IPv6 forms that embed an IPv4 address (mapped, compatible,
 * NAT64) are judged by that address. Checked on every address a name resolves
 * to, on every redirect, and the connection then goes to the checked address.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net'

const V4_RANGES: Array<[string, number, string]> = [
  ['0.0.0.0', 8, 'an unspecified ("this network") address'],
  ['10.0.0.0', 8, 'a private address'],
  ['100.64.0.0', 10, 'a shared (carrier-grade NAT) address'],
  ['127.0.0.0', 8, 'a loopback address'],
  ['169.254.0.0', 16, 'a link-local address'],
  ['172.16.0.0', 12, 'a private address'],
  ['192.0.0.0', 24, 'a reserved (IETF protocol) address'],
  ['192.0.2.0', 24, 'a documentation address'],
  ['192.88.99.0', 24, 'a reserved (6to4 relay) address'],
  ['192.168.0.0', 16, 'a private address'],
  ['198.18.0.0', 15, 'a reserved (benchmarking) address'],
  ['198.51.100.0', 24, 'a documentation address'],
  ['203.0.113.0', 24, 'a documentation address'],
  ['224.0.0.0', 4, 'a multicast address'],
  ['240.0.0.0', 4, 'a reserved address'], // 255.255.255.255 (broadcast) included
]

const V6_RANGES: Array<[string, number, string]> = [
  ['::', 128, 'an unspecified address'],
  ['::1', 128, 'a loopback address'],
  ['100::', 64, 'a reserved (discard) address'],
  ['2001::', 23, 'a reserved (IETF protocol) address'],
  ['2001:db8::', 32, 'a documentation address'],
  ['2002::', 16, 'a 6to4 address'],
  ['3fff::', 20, 'a documentation address'],
  ['fc00::', 7, 'a unique-local address'],
  ['fe80::', 10, 'a link-local address'],
  ['fec0::', 10, 'a site-local address'],
  ['ff00::', 8, 'a multicast address'],
]

function blockList(ranges: Array<[string, number, string]>, family: 'ipv4' | 'ipv6'): Array<[BlockList, string]> {
  return ranges.map(([network, prefix, reason]) => {
    const list = new BlockList()
    list.addSubnet(network, prefix, family)
    return [list, reason]
  })
}

const V4 = blockList(V4_RANGES, 'ipv4')
const V6 = blockList(V6_RANGES, 'ipv6')
const V6_GLOBAL = new BlockList()
V6_GLOBAL.addSubnet('2000::', 3, 'ipv6')

/** The 16 bytes of an IPv6 address (zone id dropped), or undefined when it is not one. */
export function ipv6Bytes(address: string): Uint8Array | undefined {
  const text = address.split('%')[0]!
  if (!isIPv6(text)) return undefined
  let head = text
  const tailV4: number[] = []
  const lastColon = text.lastIndexOf(':')
  if (isIPv4(text.slice(lastColon + 1))) {
    tailV4.push(
      ...text
        .slice(lastColon + 1)
        .split('.')
        .map(Number),
    )
    head = `${text.slice(0, lastColon + 1)}0:0`
  }
  const [left = '', right] = head.split('::')
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)))
  const l = groups(left)
  const r = right === undefined ? [] : groups(right)
  const words = [...l, ...Array<number>(8 - l.length - r.length).fill(0), ...r]
  const bytes = new Uint8Array(16)
  words.forEach((w, i) => {
    bytes[2 * i] = w >> 8
    bytes[2 * i + 1] = w & 255
  })
  if (tailV4.length === 4) bytes.set(tailV4, 12)
  return bytes
}

/** The IPv4 address an IPv6 one carries (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64 64:ff9b::a.b.c.d). */
function embeddedIPv4(bytes: Uint8Array): string | undefined {
  const zeros = (from: number, to: number) => bytes.subarray(from, to).every((b) => b === 0)
  const v4 = () => Array.from(bytes.subarray(12, 16)).join('.')
  if (zeros(0, 10) && bytes[10] === 0xff && bytes[11] === 0xff) return v4()
  if (zeros(0, 12) && !zeros(12, 15)) return v4()
  const nat64 = [0, 0x64, 0xff, 0x9b]
  if (nat64.every((b, i) => bytes[i] === b) && zeros(4, 12)) return v4()
  return undefined
}

function v6Text(bytes: Uint8Array): string {
  const words: string[] = []
  for (let i = 0; i < 16; i += 2) words.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16))
  return words.join(':')
}

/** Why `address` must not be fetched from (e.g. "a loopback address"), or undefined when it is public. */
export function forbiddenAddressReason(address: string): string | undefined {
  if (isIPv4(address)) return V4.find(([list]) => list.check(address, 'ipv4'))?.[1]
  const bytes = ipv6Bytes(address)
  if (bytes === undefined) return 'not an IP address'
  const v4 = embeddedIPv4(bytes)
  if (v4 !== undefined) return forbiddenAddressReason(v4)
  const text = v6Text(bytes)
  const reason = V6.find(([list]) => list.check(text, 'ipv6'))?.[1]
  if (reason !== undefined) return reason
  return V6_GLOBAL.check(text, 'ipv6') ? undefined : 'a reserved address'
}
