// UDP (RFC 768) over IPv4: header with the pseudo-header checksum (src, dst, 0, 17, UDP length).
import { writeIp } from './addr.js';
import { IpProto, buildIpv4, onesComplementSum, parseIpv4 } from './ipv4.js';

export const UDP_HEADER_BYTES = 8;

export interface UdpDatagram {
  src: number;
  dst: number;
  srcPort: number;
  dstPort: number;
  /** A view into the parsed buffer. */
  payload: Uint8Array;
}

export type UdpParseReason = 'truncated' | 'not_udp' | 'bad_ipv4' | 'bad_udp_length' | 'bad_udp_checksum';
export type UdpParse = { ok: true; udp: UdpDatagram } | { ok: false; reason: UdpParseReason };

function pseudoHeaderSum(src: number, dst: number, udpLength: number): number {
  const pseudo = new Uint8Array(12);
  writeIp(pseudo, 0, src);
  writeIp(pseudo, 4, dst);
  pseudo[9] = IpProto.UDP;
  pseudo[10] = udpLength >>> 8;
  pseudo[11] = udpLength & 0xff;
  return onesComplementSum(pseudo, 0, 12);
}

function checkPort(name: string, port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff)
    throw new RangeError(`UDP ${name} must be an integer 0..65535, got ${port}`);
}

/** A UDP header + payload with its checksum computed for the given IPv4 addresses. */
export function encodeUdp(src: number, dst: number, srcPort: number, dstPort: number, payload: Uint8Array): Uint8Array {
  checkPort('srcPort', srcPort);
  checkPort('dstPort', dstPort);
  const length = UDP_HEADER_BYTES + payload.length;
  if (length > 0xffff) throw new RangeError(`UDP payload of ${payload.length} bytes exceeds the 65535-byte UDP length`);
  const out = new Uint8Array(length);
  out[0] = srcPort >>> 8;
  out[1] = srcPort & 0xff;
  out[2] = dstPort >>> 8;
  out[3] = dstPort & 0xff;
  out[4] = length >>> 8;
  out[5] = length & 0xff;
  out.set(payload, UDP_HEADER_BYTES);
  let checksum = ~onesComplementSum(out, 0, length, pseudoHeaderSum(src, dst, length)) & 0xffff;
  // RFC 768: a computed 0 is sent as all ones; 0 on the wire means "no checksum".
  if (checksum === 0) checksum = 0xffff;
  out[6] = checksum >>> 8;
  out[7] = checksum & 0xff;
  return out;
}

/**
 * Parses the UDP header at buf[offset, end) for a datagram between `src` and `dst`. A zero
 * checksum is accepted (none sent); a non-zero one must verify (RFC 5944 §3.3 asks the same).
 */
export function decodeUdp(buf: Uint8Array, offset: number, end: number, src: number, dst: number): UdpParse {
  if (end - offset < UDP_HEADER_BYTES) return { ok: false, reason: 'truncated' };
  const length = (buf[offset + 4] << 8) | buf[offset + 5];
  if (length < UDP_HEADER_BYTES || length > end - offset) return { ok: false, reason: 'bad_udp_length' };
  const checksum = (buf[offset + 6] << 8) | buf[offset + 7];
  if (checksum !== 0 && onesComplementSum(buf, offset, offset + length, pseudoHeaderSum(src, dst, length)) !== 0xffff) {
    return { ok: false, reason: 'bad_udp_checksum' };
  }
  return {
    ok: true,
    udp: {
      src,
      dst,
      srcPort: (buf[offset] << 8) | buf[offset + 1],
      dstPort: (buf[offset + 2] << 8) | buf[offset + 3],
      payload: buf.subarray(offset + UDP_HEADER_BYTES, offset + length),
    },
  };
}

export interface UdpAddressing {
  src: number;
  dst: number;
  srcPort: number;
  dstPort: number;
  ttl?: number;
}

/** A whole IPv4/UDP datagram. */
export function buildUdpDatagram(a: UdpAddressing, payload: Uint8Array): Uint8Array {
  return buildIpv4(
    { src: a.src, dst: a.dst, protocol: IpProto.UDP, ttl: a.ttl },
    encodeUdp(a.src, a.dst, a.srcPort, a.dstPort, payload),
  );
}

/** Parses an IPv4 datagram that should carry UDP; `not_udp` when it carries something else. */
export function parseUdpDatagram(datagram: Uint8Array): UdpParse {
  const ip = parseIpv4(datagram, 0);
  if (!ip.ok) return { ok: false, reason: ip.reason === 'truncated' ? 'truncated' : 'bad_ipv4' };
  if (ip.header.protocol !== IpProto.UDP) return { ok: false, reason: 'not_udp' };
  return decodeUdp(datagram, ip.header.headerLength, ip.header.totalLength, ip.header.src, ip.header.dst);
}
