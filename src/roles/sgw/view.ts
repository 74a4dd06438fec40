// What the policy (src/policy/sgw.ts) needs to know about a packet, read from its headers: the
// outermost SKIP layer (who keyed it, next-hop or end) or the plain datagram's addresses, what an
// IP-in-IP datagram carries, and whether it is the protocol's own signalling. A packet on its way
// through the role is parsed once (ParsedDatagram); the functions here read that view.
import type { SkipName } from '../../keys/names.js';
import type { PacketView, SkipLayer } from '../../policy/sgw.js';
import { readIp, readU32 } from '../../wire/addr.js';
import { IpProto, IPV4_HEADER_BYTES, parseIpv4, type Ipv4Header } from '../../wire/ipv4.js';
import { decodeSkipHeader, IPPROTO_SKIP, NSID_IPV4, NSID_NONE } from '../../wire/skip.js';
import { decodeUdp, type UdpDatagram } from '../../wire/udp.js';
import { discoveryIn, isSecurityFailure, type Discovery } from '../common/signalling.js';

/** A datagram read once: its IPv4 header (checked) and, when it carries UDP with a valid header, that. */
export interface ParsedDatagram {
  bytes: Uint8Array;
  ip: Ipv4Header;
  udp?: UdpDatagram;
}

/** Reads the UDP header of a datagram whose IPv4 header `ip` was checked already. */
export function parsedOf(bytes: Uint8Array, ip: Ipv4Header): ParsedDatagram {
  if (ip.protocol !== IpProto.UDP) return { bytes, ip };
  const udp = decodeUdp(bytes, ip.headerLength, ip.totalLength, ip.src, ip.dst);
  return { bytes, ip, udp: udp.ok ? udp.udp : undefined };
}

/** The datagram's IPv4 header, checked; undefined when it is unreadable. */
export function headerOf(datagram: Uint8Array): Ipv4Header | undefined {
  const ip = parseIpv4(datagram, 0);
  return ip.ok ? ip.header : undefined;
}

/**
 * Whether a discovery answer (not a request) is awaited: only then does a datagram from port 1640 count as signalling.
 */
export type AwaitedAnswer = (answer: Discovery) => boolean;

/**
 * The layer a datagram starts with, unchecked; undefined for a plain datagram or unreadable SKIP. `ip`: its IPv4 header
 * when the caller read it already.
 */
export function outerLayer(
  datagram: Uint8Array,
  auth?: SkipLayer['auth'],
  ip = headerOf(datagram),
): SkipLayer | undefined {
  if (!ip || ip.protocol !== IPPROTO_SKIP) return undefined;
  const skip = decodeSkipHeader(datagram, ip.headerLength, ip.totalLength);
  if (!skip.ok) return undefined;
  const h = skip.header;
  const skipSrc: SkipName =
    h.srcNsid === NSID_IPV4 ? { nsid: NSID_IPV4, address: h.srcMkid! } : { nsid: NSID_NONE, address: ip.src };
  const layer: SkipLayer = { kind: h.cryptAlg === 0 ? 'nexthop' : 'end', ip: { src: ip.src, dst: ip.dst }, skipSrc };
  if (auth) layer.auth = auth;
  return layer;
}

/** A packet as the policy sees it before any layer is opened; undefined for unreadable SKIP. */
export function viewOf(
  packet: ParsedDatagram,
  arrivedOn: 'inside' | 'outside',
  awaited: AwaitedAnswer,
): PacketView | undefined {
  const { ip } = packet;
  if (ip.protocol !== IPPROTO_SKIP) {
    const inner = { src: ip.src, dst: ip.dst };
    return {
      arrivedOn,
      layers: [],
      inner,
      ipInIp: tunnelledOf(packet.bytes, ip),
      signalling: isSignalling(packet, awaited),
    };
  }
  const layer = outerLayer(packet.bytes, undefined, ip);
  return layer ? { arrivedOn, layers: [layer] } : undefined;
}

function isSignalling({ bytes, ip, udp }: ParsedDatagram, awaited: AwaitedAnswer): boolean {
  if (isSecurityFailure(bytes, ip)) return true;
  const discovery = udp && discoveryIn(udp);
  return discovery !== undefined && (discovery.message.type === 'request' || awaited(discovery));
}

/**
 * The sequence number of a SKIP datagram's first layer (AH, else ESP) and which one it is; undefined when the
 * datagram is not SKIP or too short to hold it. `ip`: its IPv4 header when the caller read it already.
 */
export function firstLayerSequence(
  datagram: Uint8Array,
  ip = headerOf(datagram),
): { header: 'ahSeq' | 'espSeq'; seq: number } | undefined {
  if (!ip || ip.protocol !== IPPROTO_SKIP) return undefined;
  const skip = decodeSkipHeader(datagram, ip.headerLength, ip.totalLength);
  if (!skip.ok) return undefined;
  const at = ip.headerLength + skip.length;
  const ah = skip.header.nextHeader === IpProto.AH;
  const seqAt = at + (ah ? 8 : 4);
  if (seqAt + 4 > ip.totalLength) return undefined;
  return { header: ah ? 'ahSeq' : 'espSeq', seq: readU32(datagram, seqAt) };
}

/** The addresses of a plain datagram. */
export function addressesOf(datagram: Uint8Array): { src: number; dst: number } | undefined {
  const ip = headerOf(datagram);
  return ip && { src: ip.src, dst: ip.dst };
}

/**
 * The addresses inside an IP-in-IP datagram, read from the inner header as it stands (a fragment or a bad checksum
 * still names them); an inner header too short to name them counts as 0.0.0.0, so a tunnel is never taken for a plain
 * datagram.
 */
export function tunnelledOf(datagram: Uint8Array, ip = headerOf(datagram)): { src: number; dst: number } | undefined {
  if (!ip || ip.protocol !== IpProto.IPIP) return undefined;
  const at = ip.headerLength;
  if (ip.totalLength - at < IPV4_HEADER_BYTES) return { src: 0, dst: 0 };
  return { src: readIp(datagram, at + 12), dst: readIp(datagram, at + 16) };
}
