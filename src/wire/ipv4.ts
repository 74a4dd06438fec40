// IPv4 header (RFC 791): parse with the checks of spec/wire-formats.md §2, build, RFC 1071 checksum, RFC 1624 update.
import { readIp, writeIp } from './addr.js';

export const IPV4_HEADER_BYTES = 20;
/** Largest datagram the 16-bit total length can describe. */
export const MAX_IP_TOTAL = 0xffff;
export const IPV4_VERSION = 4;
export const IpProto = { ICMP: 1, IPIP: 4, TCP: 6, UDP: 17, ESP: 50, AH: 51, SKIP: 57, NONE: 59 } as const;

export const IPV4_FLAG_DF = 0x4000;
export const IPV4_FLAG_MF = 0x2000;
export const IPV4_FRAGMENT_OFFSET_MASK = 0x1fff;
export const IPV4_CHECKSUM_OFFSET = 10;

export interface Ipv4Header {
  /** 4·IHL, in bytes. */
  headerLength: number;
  tos: number;
  totalLength: number;
  identification: number;
  /** The 16-bit flags + fragment offset word. */
  flagsFragment: number;
  ttl: number;
  protocol: number;
  checksum: number;
  src: number;
  dst: number;
}

/** Parse failures are named as the engine counts the drop (`Reason` in src/engine/types.ts; the ref engine checks). */
export type Ipv4ParseReason =
  | 'truncated'
  | 'bad_ip_version'
  | 'bad_ihl'
  | 'bad_total_length'
  | 'bad_ip_checksum'
  | 'fragment';
export type Ipv4Parse = { ok: true; header: Ipv4Header } | { ok: false; reason: Ipv4ParseReason };

export interface Ipv4ParseOptions {
  /** Accept MF=1 or offset≠0: a datagram about to be protected may be a fragment; one being opened may not. */
  allowFragments?: boolean;
}

/**
 * Parses the IPv4 header at `offset`, never reading at or past `end`. Check order (both data paths):
 * fewer than 20 bytes → truncated; version → bad_ip_version; IHL < 5 or 4·IHL > total length → bad_ihl;
 * total length > bytes received → bad_total_length; checksum → bad_ip_checksum; MF/offset → fragment.
 */
export function parseIpv4(
  buf: Uint8Array,
  offset: number,
  end = buf.length,
  options: Ipv4ParseOptions = {},
): Ipv4Parse {
  const available = end - offset;
  if (available < IPV4_HEADER_BYTES) return { ok: false, reason: 'truncated' };
  if (buf[offset] >> 4 !== IPV4_VERSION) return { ok: false, reason: 'bad_ip_version' };
  const headerLength = (buf[offset] & 0x0f) * 4;
  const totalLength = (buf[offset + 2] << 8) | buf[offset + 3];
  if (headerLength < IPV4_HEADER_BYTES || headerLength > totalLength) return { ok: false, reason: 'bad_ihl' };
  if (totalLength > available) return { ok: false, reason: 'bad_total_length' };
  if (onesComplementSum(buf, offset, offset + headerLength) !== 0xffff) return { ok: false, reason: 'bad_ip_checksum' };
  const flagsFragment = (buf[offset + 6] << 8) | buf[offset + 7];
  if (!options.allowFragments && (flagsFragment & (IPV4_FLAG_MF | IPV4_FRAGMENT_OFFSET_MASK)) !== 0)
    return { ok: false, reason: 'fragment' };
  return {
    ok: true,
    header: {
      headerLength,
      tos: buf[offset + 1],
      totalLength,
      identification: (buf[offset + 4] << 8) | buf[offset + 5],
      flagsFragment,
      ttl: buf[offset + 8],
      protocol: buf[offset + 9],
      checksum: (buf[offset + 10] << 8) | buf[offset + 11],
      src: readIp(buf, offset + 12),
      dst: readIp(buf, offset + 16),
    },
  };
}

export interface Ipv4Fields {
  tos?: number;
  totalLength: number;
  identification?: number;
  /** Flags + fragment offset word (e.g. IPV4_FLAG_DF). */
  flagsFragment?: number;
  ttl?: number;
  protocol: number;
  src: number;
  dst: number;
}

/** Writes a 20-byte header (no options) at `offset`, checksum included. */
export function writeIpv4Header(buf: Uint8Array, offset: number, f: Ipv4Fields): void {
  buf[offset] = (IPV4_VERSION << 4) | 5;
  buf[offset + 1] = f.tos ?? 0;
  buf[offset + 2] = f.totalLength >>> 8;
  buf[offset + 3] = f.totalLength & 0xff;
  const id = f.identification ?? 0;
  buf[offset + 4] = id >>> 8;
  buf[offset + 5] = id & 0xff;
  const ff = f.flagsFragment ?? 0;
  buf[offset + 6] = ff >>> 8;
  buf[offset + 7] = ff & 0xff;
  buf[offset + 8] = f.ttl ?? 64;
  buf[offset + 9] = f.protocol;
  writeIp(buf, offset + 12, f.src);
  writeIp(buf, offset + 16, f.dst);
  setIpv4Checksum(buf, offset);
}

/** Recomputes in place the checksum of the IPv4 header at `offset` spanning `headerLength` bytes (options included). */
export function setIpv4Checksum(buf: Uint8Array, offset = 0, headerLength = IPV4_HEADER_BYTES): void {
  const at = offset + IPV4_CHECKSUM_OFFSET;
  buf[at] = 0;
  buf[at + 1] = 0;
  const checksum = internetChecksum(buf, offset, offset + headerLength);
  buf[at] = checksum >>> 8;
  buf[at + 1] = checksum & 0xff;
}

/** A whole datagram: a 20-byte header (total length filled in) followed by `payload`. */
export function buildIpv4(f: Omit<Ipv4Fields, 'totalLength'>, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(IPV4_HEADER_BYTES + payload.length);
  writeIpv4Header(out, 0, { ...f, totalLength: out.length });
  out.set(payload, IPV4_HEADER_BYTES);
  return out;
}

/**
 * RFC 1071 one's-complement sum of buf[start, end) as big-endian 16-bit words (odd tail padded with 0), folded to 16
 * bits.
 */
export function onesComplementSum(buf: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i < end) sum += buf[i] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The Internet checksum of buf[start, end): the complement of the one's-complement sum. */
export function internetChecksum(buf: Uint8Array, start: number, end: number, initial = 0): number {
  return ~onesComplementSum(buf, start, end, initial) & 0xffff;
}

/** RFC 1624 eqn. 3: the checksum after one 16-bit word changed from `oldWord` to `newWord`: HC' = ~(~HC + ~m + m'). */
export function updateChecksum(checksum: number, oldWord: number, newWord: number): number {
  let sum = (~checksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
