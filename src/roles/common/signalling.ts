// The protocol's own plain datagrams, which roles let through unprotected: ICMP Security
// Failures (type 40) and certificate discovery (UDP 1640).
import { decodeDiscovery, DISCOVERY_PORT, type DiscoveryMessage } from '../../keys/discovery.js';
import type { SkipName } from '../../keys/names.js';
import type { Sgw } from '../../topology/map.js';
import { ipToU32 } from '../../wire/addr.js';
import { ICMP_SECURITY_FAILURE } from '../../wire/icmp40.js';
import { IpProto, parseIpv4, type Ipv4Header } from '../../wire/ipv4.js';
import { NSID_NONE } from '../../wire/skip.js';
import { parseUdpDatagram, type UdpDatagram } from '../../wire/udp.js';

/** A certificate discovery message with its addresses and ports. */
export interface Discovery {
  src: number;
  dst: number;
  srcPort: number;
  dstPort: number;
  message: DiscoveryMessage;
}

/**
 * A well-formed discovery message: a request to port 1640, or an answer from it. Any other use of the port is not
 * signalling.
 */
export function discoveryOf(datagram: Uint8Array): Discovery | undefined {
  const parsed = parseUdpDatagram(datagram);
  return parsed.ok ? discoveryIn(parsed.udp) : undefined;
}

/** The same, for a UDP datagram already decoded. */
export function discoveryIn(udp: UdpDatagram): Discovery | undefined {
  if (udp.dstPort !== DISCOVERY_PORT && udp.srcPort !== DISCOVERY_PORT) return undefined;
  const { src, dst, srcPort, dstPort, payload } = udp;
  const msg = decodeDiscovery(payload);
  if (!msg.ok || (msg.message.type === 'request' ? dstPort : srcPort) !== DISCOVERY_PORT) return undefined;
  return { src, dst, srcPort, dstPort, message: msg.message };
}

export function isDiscovery(datagram: Uint8Array): boolean {
  return discoveryOf(datagram) !== undefined;
}

/** An ICMP Security Failure (type 40); `header`, when the caller parsed the datagram already, spares a second parse. */
export function isSecurityFailure(datagram: Uint8Array, header: Ipv4Header | undefined = headerOf(datagram)): boolean {
  if (header === undefined || header.protocol !== IpProto.ICMP) return false;
  const at = header.headerLength;
  return header.totalLength > at && datagram.length > at && datagram[at] === ICMP_SECURITY_FAILURE;
}

function headerOf(datagram: Uint8Array): Ipv4Header | undefined {
  const ip = parseIpv4(datagram, 0);
  return ip.ok ? ip.header : undefined;
}

/** An SGW's SKIP name: NSID 0, named by its outside address (docs/certificates.md §1). */
export function sgwName(sgw: Sgw): SkipName {
  return { nsid: NSID_NONE, address: ipToU32(sgw.outside) };
}
