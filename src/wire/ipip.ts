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
