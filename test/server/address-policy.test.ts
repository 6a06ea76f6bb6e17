/** Which addresses remote images may come from: public unicast only, whatever the notation. */
import t from 'tap'
import { forbiddenAddressReason, ipv6Bytes } from '../../src/http/address-policy.js'

const REFUSED: Array<[string, string]> = [
  ['127.0.0.1', 'a loopback address'],
  ['127.255.0.9', 'a loopback address'],
  ['10.1.2.3', 'a private address'],
  ['172.16.0.1', 'a private address'],
  ['172.31.255.255', 'a private address'],
  ['192.168.1.1', 'a private address'],
  ['169.254.169.254', 'a link-local address'],
  ['100.64.0.1', 'a shared (carrier-grade NAT) address'],
  ['0.0.0.0', 'an unspecified ("this network") address'],
  ['224.0.0.1', 'a multicast address'],
  ['240.0.0.1', 'a reserved address'],
  ['255.255.255.255', 'a reserved address'],
  ['192.0.2.10', 'a documentation address'],
  ['198.18.0.1', 'a reserved (benchmarking) address'],
  ['::1', 'a loopback address'],
  ['::', 'an unspecified address'],
  ['fe80::1', 'a link-local address'],
  ['fe80::1%eth0', 'a link-local address'],
  ['fc00::1', 'a unique-local address'],
  ['fd12:3456::1', 'a unique-local address'],
  ['ff02::1', 'a multicast address'],
  ['2001:db8::1', 'a documentation address'],
  ['2002:7f00:1::', 'a 6to4 address'],
  ['::ffff:127.0.0.1', 'a loopback address'],
  ['::ffff:7f00:1', 'a loopback address'],
  ['::ffff:10.0.0.1', 'a private address'],
  ['::ffff:169.254.169.254', 'a link-local address'],
  ['::127.0.0.1', 'a loopback address'],
  ['64:ff9b::192.168.0.1', 'a private address'],
  ['64:ff9b::a9fe:a9fe', 'a link-local address'],
  ['4000::1', 'a reserved address'],
  ['not-an-ip', 'not an IP address'],
]

const ALLOWED = [
  '8.8.8.8',
  '1.1.1.1',
  '172.32.0.1',
  '100.128.0.1',
  '2606:4700:4700::1111',
  '::ffff:8.8.8.8',
  '64:ff9b::8.8.8.8',
]

t.test('loopback, private, link-local, unique-local and reserved addresses are refused with the reason', async (t) => {
  for (const [address, reason] of REFUSED) t.equal(forbiddenAddressReason(address), reason, address)
})

t.test('public unicast addresses are allowed, also when embedded in IPv6', async (t) => {
  for (const address of ALLOWED) t.equal(forbiddenAddressReason(address), undefined, address)
})

t.test('IPv6 text parses to its 16 bytes, with or without an IPv4 tail', async (t) => {
  t.same(Array.from(ipv6Bytes('::ffff:1.2.3.4')!), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4])
  t.same(Array.from(ipv6Bytes('2001:db8::8:1')!), [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 1])
  t.equal(ipv6Bytes('1.2.3.4'), undefined)
})
