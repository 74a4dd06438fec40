// ICMP echo (RFC 792) for a host whose kernel never sees its own traffic (a daemon's AttachedHost):
// the reply to an echo request addressed to it, built from the request alone.
import { buildIpv4, internetChecksum, IpProto, parseIpv4 } from '../wire/ipv4.js';

const ECHO_REQUEST = 8;
const ECHO_REPLY = 0;
/** Type, code, checksum, identifier, sequence. */
const ECHO_HEADER_BYTES = 8;

/** The echo reply to `packet`, or undefined when it is not a well-formed, unfragmented ICMP echo request. */
export function echoReply(packet: Uint8Array): Uint8Array | undefined {
  const ip = parseIpv4(packet, 0);
  if (!ip.ok || ip.header.protocol !== IpProto.ICMP) return undefined;
  const { headerLength, totalLength, src, dst } = ip.header;
  if (
    totalLength - headerLength < ECHO_HEADER_BYTES ||
    packet[headerLength] !== ECHO_REQUEST ||
    packet[headerLength + 1] !== 0
  )
    return undefined;
  if (internetChecksum(packet, headerLength, totalLength) !== 0) return undefined;
  const icmp = Uint8Array.from(packet.subarray(headerLength, totalLength));
  icmp[0] = ECHO_REPLY;
  icmp[2] = 0;
  icmp[3] = 0;
  const checksum = internetChecksum(icmp, 0, icmp.length);
  icmp[2] = checksum >>> 8;
  icmp[3] = checksum & 0xff;
  return buildIpv4({ protocol: IpProto.ICMP, src: dst, dst: src, tos: ip.header.tos }, icmp);
}
