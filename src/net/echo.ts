// ICMP a host whose kernel never sees its own traffic (a daemon's AttachedHost) must still act on: the reply to an
// echo request addressed to it (RFC 792), built from the request alone, and a router's "fragmentation needed"
// (RFC 1191) about a packet it sent, which its kernel must see to keep the path MTU its I/O loops ask for.
import { readU32 } from '../wire/addr.js';
import { buildIpv4, internetChecksum, IpProto, parseIpv4 } from '../wire/ipv4.js';

/** The ICMP types (RFC 792) the hosts act on. */
export const IcmpType = { ECHO_REPLY: 0, DEST_UNREACHABLE: 3, ECHO_REQUEST: 8, TIME_EXCEEDED: 11 } as const;
const FRAGMENTATION_NEEDED = 4;
/** Type, code, checksum and 4 bytes more (an echo's identifier and sequence; an error's quote follows them). */
export const ICMP_HEADER_BYTES = 8;

/** The echo reply to `packet`, or undefined when it is not a well-formed, unfragmented ICMP echo request. */
export function echoReply(packet: Uint8Array): Uint8Array | undefined {
  const ip = parseIpv4(packet, 0);
  if (!ip.ok || ip.header.protocol !== IpProto.ICMP) return undefined;
  const { headerLength, totalLength, src, dst } = ip.header;
  if (
    totalLength - headerLength < ICMP_HEADER_BYTES ||
    packet[headerLength] !== IcmpType.ECHO_REQUEST ||
    packet[headerLength + 1] !== 0
  )
    return undefined;
  if (internetChecksum(packet, headerLength, totalLength) !== 0) return undefined;
  const icmp = Uint8Array.from(packet.subarray(headerLength, totalLength));
  icmp[0] = IcmpType.ECHO_REPLY;
  icmp[2] = 0;
  icmp[3] = 0;
  const checksum = internetChecksum(icmp, 0, icmp.length);
  icmp[2] = checksum >>> 8;
  icmp[3] = checksum & 0xff;
  return buildIpv4({ protocol: IpProto.ICMP, src: dst, dst: src, tos: ip.header.tos }, icmp);
}

/**
 * Whether `packet` is a well-formed ICMP 3/4 quoting (at least the header and 8 bytes of) a datagram its
 * destination sent: what the kernel lowers the path MTU toward the quoted destination on.
 */
export function isFragmentationNeeded(packet: Uint8Array): boolean {
  const ip = parseIpv4(packet, 0);
  if (!ip.ok || ip.header.protocol !== IpProto.ICMP) return false;
  const { headerLength, totalLength, dst } = ip.header;
  const at = headerLength + ICMP_HEADER_BYTES;
  if (totalLength < at + 20 + 8 || packet[headerLength] !== IcmpType.DEST_UNREACHABLE) return false;
  if (packet[headerLength + 1] !== FRAGMENTATION_NEEDED) return false;
  if (internetChecksum(packet, headerLength, totalLength) !== 0) return false;
  const quotedHeader = (packet[at] & 0x0f) * 4;
  return packet[at] >> 4 === 4 && totalLength >= at + quotedHeader + 8 && readU32(packet, at + 12) === dst;
}
