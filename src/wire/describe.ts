/**
 * describe(packet): renders a packet as the draft writes its stacks (draft §4.4–§4.5), one line, outermost
 * header first, parts joined by " / ". The roles and the lab assert stacks against these strings.
 *
 *   IPv4(src>dst)                     every IPv4 header: outer, IP-in-IP, the datagram a layer protects
 *   SKIP(NSID1 MKID 10.0.0.100 > NSID0)  source identity > destination identity; NSID 0 carries no MKID
 *   AH[next]                          an AH whose next header is 4 (IPv4): a next-hop layer
 *   AH[end]                           any other AH (End-End AH, next header 50)
 *   ESP(spi 1)                        opaque; with a resolver that opens it, " / " and the decrypted stack follow
 *   UDP(1024>434)  TCP(1024>80)       source port > destination port
 *   ICMP40(code 4)                    ICMP Security Failure (RFC 2521)
 *   ICMP(type 8 code 0)               any other ICMP
 *   Fragment(offset 185)              a non-first IPv4 fragment's payload (offset in 8-byte units)
 *   Proto(47, 12 bytes)               any other protocol: its number and payload length
 *   Name! reason                      a part that does not parse; reason is the engine's (truncated, bad_ihl,
 *                                     bad_ip_checksum, unknown_nsid, bad_ah, …); the line ends there
 *
 * Each IPv4 header bounds what follows it by its total length; trailing bytes are not shown. Never throws.
 */
import { readU32, u32ToIp } from './addr.js';
import { parseAh } from './ah.js';
import { ESP_HEADER_BYTES } from './esp.js';
import { ICMP_SECURITY_FAILURE } from './icmp40.js';
import { IPV4_FRAGMENT_OFFSET_MASK, IpProto, parseIpv4, type Ipv4Header } from './ipv4.js';
import { IPPROTO_SKIP, NSID_NONE, decodeSkipHeader, type SkipHeader } from './skip.js';

export interface EspContext {
  spi: number;
  seq: number;
  /** The ESP packet from its SPI to the end of its ICV. */
  esp: Uint8Array;
  /** The IPv4 header the ESP sits behind. */
  ip: Ipv4Header;
  /** The SKIP header in front of it (skip mode). */
  skip?: SkipHeader;
}

export interface DescribeResolver {
  /** The decrypted inner datagram, or undefined when this ESP cannot be opened. */
  openEsp(ctx: EspContext): Uint8Array | undefined;
}

/** Most parts rendered; a longer stack ends with "…" (only hostile input gets there). */
const MAX_PARTS = 256;

export function describe(packet: Uint8Array, resolver?: DescribeResolver): string {
  const parts: string[] = [];
  describeIpv4(packet, 0, packet.length, parts, resolver);
  return parts.join(' / ');
}

function skipIdentity(nsid: number, mkid: number | undefined): string {
  return nsid === NSID_NONE || mkid === undefined ? `NSID${nsid}` : `NSID${nsid} MKID ${u32ToIp(mkid)}`;
}

/** Renders the IPv4 datagram at buf[offset, end) and everything it carries into `parts`. */
function describeIpv4(
  buf: Uint8Array,
  offset: number,
  end: number,
  parts: string[],
  resolver?: DescribeResolver,
): void {
  for (;;) {
    if (parts.length >= MAX_PARTS) {
      parts.push('…');
      return;
    }
    const ip = parseIpv4(buf, offset, end, { allowFragments: true });
    if (!ip.ok) {
      parts.push(`IPv4! ${ip.reason}`);
      return;
    }
    const h = ip.header;
    parts.push(`IPv4(${u32ToIp(h.src)}>${u32ToIp(h.dst)})`);
    const datagramEnd = offset + h.totalLength;
    let at = offset + h.headerLength;
    if ((h.flagsFragment & IPV4_FRAGMENT_OFFSET_MASK) !== 0) {
      parts.push(`Fragment(offset ${h.flagsFragment & IPV4_FRAGMENT_OFFSET_MASK})`);
      return;
    }
    let next = h.protocol;
    let skip: SkipHeader | undefined;
    // Headers between this IPv4 header and the next datagram (or the end).
    for (;;) {
      if (parts.length >= MAX_PARTS) {
        parts.push('…');
        return;
      }
      if (next === IPPROTO_SKIP) {
        const s = decodeSkipHeader(buf, at, datagramEnd);
        if (!s.ok) {
          parts.push(`SKIP! ${s.reason}`);
          return;
        }
        skip = s.header;
        parts.push(`SKIP(${skipIdentity(skip.srcNsid, skip.srcMkid)} > ${skipIdentity(skip.dstNsid, skip.dstMkid)})`);
        at += s.length;
        next = skip.nextHeader;
      } else if (next === IpProto.AH) {
        const a = parseAh(buf, at, datagramEnd);
        if (!a.ok) {
          parts.push(`AH! ${a.reason}`);
          return;
        }
        parts.push(a.header.nextHeader === IpProto.IPIP ? 'AH[next]' : 'AH[end]');
        at += a.header.length;
        next = a.header.nextHeader;
      } else if (next === IpProto.ESP) {
        if (datagramEnd - at < ESP_HEADER_BYTES) {
          parts.push('ESP! truncated');
          return;
        }
        const spi = readU32(buf, at);
        parts.push(`ESP(spi ${spi})`);
        const inner = resolver?.openEsp({
          spi,
          seq: readU32(buf, at + 4),
          esp: buf.subarray(at, datagramEnd),
          ip: h,
          skip,
        });
        if (inner === undefined) return;
        buf = inner;
        offset = 0;
        end = inner.length;
        break;
      } else if (next === IpProto.IPIP) {
        offset = at;
        end = datagramEnd;
        break;
      } else {
        parts.push(describeTransport(next, buf, at, datagramEnd));
        return;
      }
    }
  }
}

function describeTransport(protocol: number, buf: Uint8Array, at: number, end: number): string {
  const port = (o: number) => (buf[o] << 8) | buf[o + 1];
  switch (protocol) {
    case IpProto.UDP:
      return end - at < 8 ? 'UDP! truncated' : `UDP(${port(at)}>${port(at + 2)})`;
    case IpProto.TCP:
      return end - at < 20 ? 'TCP! truncated' : `TCP(${port(at)}>${port(at + 2)})`;
    case IpProto.ICMP:
      if (end - at < 4) return 'ICMP! truncated';
      return buf[at] === ICMP_SECURITY_FAILURE
        ? `ICMP40(code ${buf[at + 1]})`
        : `ICMP(type ${buf[at]} code ${buf[at + 1]})`;
    default:
      return `Proto(${protocol}, ${end - at} bytes)`;
  }
}
