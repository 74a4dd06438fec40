// The protocol's own plain datagrams, which roles let through unprotected: ICMP Security
// Failures (type 40) and certificate discovery (UDP 1640).
import { DISCOVERY_PORT } from '../../keys/discovery.js';
import type { SkipName } from '../../keys/names.js';
import type { Sgw } from '../../topology/map.js';
import { ipToU32 } from '../../wire/addr.js';
import { ICMP_SECURITY_FAILURE } from '../../wire/icmp40.js';
import { IpProto, parseIpv4 } from '../../wire/ipv4.js';
import { NSID_NONE } from '../../wire/skip.js';
import { parseUdpDatagram } from '../../wire/udp.js';

export function isDiscovery(datagram: Uint8Array): boolean {
  const udp = parseUdpDatagram(datagram);
  return udp.ok && (udp.udp.dstPort === DISCOVERY_PORT || udp.udp.srcPort === DISCOVERY_PORT);
}

export function isSecurityFailure(datagram: Uint8Array): boolean {
  const ip = parseIpv4(datagram, 0);
  return ip.ok && ip.header.protocol === IpProto.ICMP && ip.header.totalLength > ip.header.headerLength && datagram[ip.header.headerLength] === ICMP_SECURITY_FAILURE;
}

/** An SGW's SKIP name: NSID 0, named by its outside address (docs/certificates.md §1). */
export function sgwName(sgw: Sgw): SkipName {
  return { nsid: NSID_NONE, address: ipToU32(sgw.outside) };
}
