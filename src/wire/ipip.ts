// IP-in-IP (RFC 2003): an outer IPv4 header (protocol 4) in front of an unchanged datagram.
import {
  IPV4_FLAG_DF,
  IPV4_HEADER_BYTES,
  IpProto,
  parseIpv4,
  writeIpv4Header,
  type Ipv4Header,
  type Ipv4ParseReason,
} from './ipv4.js';

export const IPIP_TTL = 64;

/**
 * Writes the RFC 2003 §3.1 outer header for `inner` at `offset` (20 bytes before the inner datagram):
 * TOS and DF copied, identification = the inner one, TTL 64, protocol 4.
 */
export function writeIpipHeader(buf: Uint8Array, offset: number, inner: Ipv4Header, src: number, dst: number): void {
  writeIpv4Header(buf, offset, {
    tos: inner.tos,
    totalLength: IPV4_HEADER_BYTES + inner.totalLength,
    identification: inner.identification,
    flagsFragment: inner.flagsFragment & IPV4_FLAG_DF,
    ttl: IPIP_TTL,
    protocol: IpProto.IPIP,
    src,
    dst,
  });
}

/** RFC 2003 §3.2: never tunnel a datagram whose source is the tunnel exit. */
export function isIpipLoop(inner: Ipv4Header, outerDst: number): boolean {
  return inner.src === outerDst;
}

/**
 * RFC 2003 §6.2 on `length` bytes at `at` (the receiving I/O loop's home tunnel peel, native/wire/ipv4.h
 * ipip_whole_inner, and an End-End SA's selectors.tunnel): a whole IPv4 datagram (version 4, IHL >= 5, not a
 * fragment, total length within `length`) of protocol 4, whose inner datagram has a whole header of version 4, a total
 * length within the outer one and TTL not 0. Returns the inner datagram's offset from `at`, 0 when it is not one. The
 * outer checksum is not checked: the layer around it authenticated these bytes.
 */
export function wholeIpipInner(buf: Uint8Array, at: number, length: number): number {
  const minimum = 2 * IPV4_HEADER_BYTES;
  if (length < minimum || buf[at] >> 4 !== 4 || buf[at + 9] !== IpProto.IPIP) return 0;
  const ihl = (buf[at] & 0x0f) * 4;
  const total = (buf[at + 2] << 8) | buf[at + 3];
  const fragment = ((buf[at + 6] << 8) | buf[at + 7]) & 0x3fff;
  if (ihl < IPV4_HEADER_BYTES || total > length || total < ihl + IPV4_HEADER_BYTES || fragment !== 0) return 0;
  const q = at + ihl;
  const innerIhl = (buf[q] & 0x0f) * 4;
  const innerTotal = (buf[q + 2] << 8) | buf[q + 3];
  if (buf[q] >> 4 !== 4 || innerIhl < IPV4_HEADER_BYTES || innerTotal < innerIhl || innerTotal > total - ihl) return 0;
  return buf[q + 8] === 0 ? 0 : ihl;
}

export type IpipParse =
  | { ok: true; outer: Ipv4Header; inner: Ipv4Header; innerOffset: number }
  | { ok: false; reason: Ipv4ParseReason | 'bad_next_header' | 'ttl_expired' };

/**
 * Parses outer and inner header of an IP-in-IP packet; the inner datagram may be a fragment (it is delivered,
 * not opened); an inner TTL of 0 is ttl_expired (RFC 2003 §3.1).
 */
export function parseIpip(buf: Uint8Array, offset: number, end = buf.length): IpipParse {
  const outer = parseIpv4(buf, offset, end);
  if (!outer.ok) return outer;
  if (outer.header.protocol !== IpProto.IPIP) return { ok: false, reason: 'bad_next_header' };
  const innerOffset = offset + outer.header.headerLength;
  const inner = parseIpv4(buf, innerOffset, offset + outer.header.totalLength, { allowFragments: true });
  if (!inner.ok) return inner;
  if (inner.header.ttl === 0) return { ok: false, reason: 'ttl_expired' };
  return { ok: true, outer: outer.header, inner: inner.header, innerOffset };
}
