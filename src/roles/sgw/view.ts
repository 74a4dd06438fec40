// What the policy (src/policy/sgw.ts) needs to know about a packet, read from its headers: the
// outermost SKIP layer (who keyed it, next-hop or end) or the plain datagram's addresses.
import type { SkipName } from '../../keys/names.js';
import type { PacketView, SkipLayer } from '../../policy/sgw.js';
import { parseIpv4 } from '../../wire/ipv4.js';
import { decodeSkipHeader, IPPROTO_SKIP, NSID_IPV4, NSID_NONE } from '../../wire/skip.js';
import { isDiscovery, isSecurityFailure } from '../common/signalling.js';

/** The layer a datagram starts with, unchecked; undefined for a plain datagram or unreadable SKIP. */
export function outerLayer(datagram: Uint8Array, auth?: SkipLayer['auth']): SkipLayer | undefined {
  const ip = parseIpv4(datagram, 0);
  if (!ip.ok || ip.header.protocol !== IPPROTO_SKIP) return undefined;
  const skip = decodeSkipHeader(datagram, ip.header.headerLength, ip.header.totalLength);
  if (!skip.ok) return undefined;
  const h = skip.header;
  const skipSrc: SkipName = h.srcNsid === NSID_IPV4 ? { nsid: NSID_IPV4, address: h.srcMkid! } : { nsid: NSID_NONE, address: ip.header.src };
  const layer: SkipLayer = { kind: h.cryptAlg === 0 ? 'nexthop' : 'end', ip: { src: ip.header.src, dst: ip.header.dst }, skipSrc };
  if (auth) layer.auth = auth;
  return layer;
}

/** A packet as the policy sees it before any layer is opened. */
export function viewOf(datagram: Uint8Array, arrivedOn: 'inside' | 'outside'): PacketView | undefined {
  const ip = parseIpv4(datagram, 0);
  if (!ip.ok) return undefined;
  if (ip.header.protocol !== IPPROTO_SKIP) {
    return { arrivedOn, layers: [], inner: { src: ip.header.src, dst: ip.header.dst }, signalling: isSecurityFailure(datagram) || isDiscovery(datagram) };
  }
  const layer = outerLayer(datagram);
  return layer ? { arrivedOn, layers: [layer] } : undefined;
}

/** The addresses of a plain datagram. */
export function addressesOf(datagram: Uint8Array): { src: number; dst: number } | undefined {
  const ip = parseIpv4(datagram, 0);
  return ip.ok ? { src: ip.header.src, dst: ip.header.dst } : undefined;
}
