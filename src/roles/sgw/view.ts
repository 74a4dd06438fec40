// What the policy (src/policy/sgw.ts) needs to know about a packet, read from its headers: the
// outermost SKIP layer (who keyed it, next-hop or end) or the plain datagram's addresses, what an
// IP-in-IP datagram carries, and whether it is the protocol's own signalling.
import type { SkipName } from '../../keys/names.js';
import type { PacketView, SkipLayer } from '../../policy/sgw.js';
import { readIp } from '../../wire/addr.js';
import { IpProto, IPV4_HEADER_BYTES, parseIpv4 } from '../../wire/ipv4.js';
import { decodeSkipHeader, IPPROTO_SKIP, NSID_IPV4, NSID_NONE } from '../../wire/skip.js';
import { discoveryOf, isSecurityFailure, type Discovery } from '../common/signalling.js';

/** Whether a discovery answer (not a request) is awaited: only then does a datagram from port 1640 count as signalling. */
export type AwaitedAnswer = (answer: Discovery) => boolean;

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
export function viewOf(datagram: Uint8Array, arrivedOn: 'inside' | 'outside', awaited: AwaitedAnswer): PacketView | undefined {
  const ip = parseIpv4(datagram, 0);
  if (!ip.ok) return undefined;
  if (ip.header.protocol !== IPPROTO_SKIP) {
    const inner = { src: ip.header.src, dst: ip.header.dst };
    return { arrivedOn, layers: [], inner, ipInIp: tunnelledOf(datagram), signalling: isSignalling(datagram, awaited) };
  }
  const layer = outerLayer(datagram);
  return layer ? { arrivedOn, layers: [layer] } : undefined;
}

function isSignalling(datagram: Uint8Array, awaited: AwaitedAnswer): boolean {
  if (isSecurityFailure(datagram)) return true;
  const discovery = discoveryOf(datagram);
  return discovery !== undefined && (discovery.message.type === 'request' || awaited(discovery));
}

/** The addresses of a plain datagram. */
export function addressesOf(datagram: Uint8Array): { src: number; dst: number } | undefined {
  const ip = parseIpv4(datagram, 0);
  return ip.ok ? { src: ip.header.src, dst: ip.header.dst } : undefined;
}

/**
 * The addresses inside an IP-in-IP datagram, read from the inner header as it stands (a fragment or a bad checksum still names
 * them); an inner header too short to name them counts as 0.0.0.0, so a tunnel is never taken for a plain datagram.
 */
export function tunnelledOf(datagram: Uint8Array): { src: number; dst: number } | undefined {
  const ip = parseIpv4(datagram, 0);
  if (!ip.ok || ip.header.protocol !== IpProto.IPIP) return undefined;
  const at = ip.header.headerLength;
  if (ip.header.totalLength - at < IPV4_HEADER_BYTES) return { src: 0, dst: 0 };
  return { src: readIp(datagram, at + 12), dst: readIp(datagram, at + 16) };
}
