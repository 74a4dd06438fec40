// ICMP Security Failures, type 40 (RFC 2521; spec/wire-formats.md §7).
import { readU32 } from './addr.js';
import { IPV4_HEADER_BYTES, IpProto, buildIpv4, internetChecksum, onesComplementSum, parseIpv4 } from './ipv4.js';
import { IPPROTO_SKIP, decodeSkipHeader } from './skip.js';

export const ICMP_SECURITY_FAILURE = 40;
export const ICMP40_HEADER_BYTES = 8;
/** Bytes of what follows the offending SPI (or the IP header, when there is none) that the message quotes. */
export const ICMP40_QUOTE_TAIL_BYTES = 8;

export const Icmp40Code = {
  badSpi: 0,
  authenticationFailed: 1,
  decompressionFailed: 2,
  decryptionFailed: 3,
  needAuthentication: 4,
  needAuthorization: 5,
} as const;
export type Icmp40CodeValue = (typeof Icmp40Code)[keyof typeof Icmp40Code];
const MAX_CODE = Icmp40Code.needAuthorization;

/**
 * Offset, within `original`, of the first byte of the outermost SPI, or 0 if it has none:
 * SKIP-framed AH → IHL·4 + len(SKIP) + 4; SKIP-framed ESP → IHL·4 + len(SKIP); bare AH → IHL·4 + 4; bare ESP → IHL·4.
 * Throws RangeError when `original` does not start with a valid IPv4 header (never answer garbage).
 */
export function offendingSpiPointer(original: Uint8Array): number {
  const ip = parseIpv4(original, 0, original.length, { allowFragments: true });
  if (!ip.ok)
    throw new RangeError(`ICMP 40 needs the offending datagram to start with a valid IPv4 header (${ip.reason})`);
  let at = ip.header.headerLength;
  let next = ip.header.protocol;
  const end = ip.header.totalLength;
  if (next === IPPROTO_SKIP) {
    const skip = decodeSkipHeader(original, at, end);
    if (!skip.ok) return 0;
    at += skip.length;
    next = skip.header.nextHeader;
  }
  if (next === IpProto.AH) return at + 8 <= end ? at + 4 : 0;
  if (next === IpProto.ESP) return at + 4 <= end ? at : 0;
  return 0;
}

/**
 * The ICMP message (type 40 … quoted headers): the original IP header, every header up to and including the
 * offending SPI, and the first 8 bytes after it (after the IP header when there is no SPI), clipped to the datagram.
 */
export function buildSecurityFailure(code: Icmp40CodeValue, original: Uint8Array): Uint8Array {
  if (!Number.isInteger(code) || code < 0 || code > MAX_CODE)
    throw new RangeError(`ICMP 40 code must be 0..${MAX_CODE}, got ${code}`);
  const pointer = offendingSpiPointer(original);
  const quoteEnd = quotedLength(original);
  const out = new Uint8Array(ICMP40_HEADER_BYTES + quoteEnd);
  out[0] = ICMP_SECURITY_FAILURE;
  out[1] = code;
  out[6] = pointer >>> 8;
  out[7] = pointer & 0xff;
  out.set(original.subarray(0, quoteEnd), ICMP40_HEADER_BYTES);
  const checksum = internetChecksum(out, 0, out.length);
  out[2] = checksum >>> 8;
  out[3] = checksum & 0xff;
  return out;
}

/**
 * How many bytes of `original` a failure message about it quotes: the IP header, the headers up to and including the
 * offending SPI and 8 bytes more, clipped to the datagram. Throws RangeError like offendingSpiPointer.
 */
export function quotedLength(original: Uint8Array): number {
  const pointer = offendingSpiPointer(original);
  const ip = parseIpv4(original, 0, original.length, { allowFragments: true });
  if (!ip.ok) throw new RangeError(`ICMP 40 needs a valid IPv4 header (${ip.reason})`);
  return Math.min(
    ip.header.totalLength,
    (pointer === 0 ? ip.header.headerLength : pointer + 4) + ICMP40_QUOTE_TAIL_BYTES,
  );
}

/** A whole IPv4 datagram carrying the type-40 message from `src` to `dst` (usually the offender's source). */
export function buildSecurityFailurePacket(
  src: number,
  dst: number,
  code: Icmp40CodeValue,
  original: Uint8Array,
  ttl = 64,
): Uint8Array {
  return buildIpv4({ src, dst, ttl, protocol: IpProto.ICMP }, buildSecurityFailure(code, original));
}

export interface SecurityFailure {
  code: number;
  pointer: number;
  /** The quoted original headers (a view into the message). */
  original: Uint8Array;
  /** The SPI the pointer names, if any. */
  spi?: number;
}

export type Icmp40ParseReason = 'truncated' | 'bad_type' | 'bad_checksum' | 'bad_code' | 'bad_pointer';
export type Icmp40Parse = { ok: true; message: SecurityFailure } | { ok: false; reason: Icmp40ParseReason };

/**
 * Parses an ICMP message in buf[offset, end). Checks: 8-byte header, type 40, checksum, code 0..5, a quoted IPv4
 * header (20 bytes at least), and a pointer that is 0 or names 4 quoted bytes behind that header.
 */
export function parseSecurityFailure(buf: Uint8Array, offset: number, end = buf.length): Icmp40Parse {
  if (end - offset < ICMP40_HEADER_BYTES) return { ok: false, reason: 'truncated' };
  if (buf[offset] !== ICMP_SECURITY_FAILURE) return { ok: false, reason: 'bad_type' };
  if (onesComplementSum(buf, offset, end) !== 0xffff) return { ok: false, reason: 'bad_checksum' };
  const code = buf[offset + 1];
  if (code > MAX_CODE) return { ok: false, reason: 'bad_code' };
  const original = buf.subarray(offset + ICMP40_HEADER_BYTES, end);
  if (original.length < IPV4_HEADER_BYTES) return { ok: false, reason: 'truncated' };
  const pointer = (buf[offset + 6] << 8) | buf[offset + 7];
  if (pointer === 0) return { ok: true, message: { code, pointer, original } };
  if (pointer < IPV4_HEADER_BYTES || pointer + 4 > original.length) return { ok: false, reason: 'bad_pointer' };
  return { ok: true, message: { code, pointer, original, spi: readU32(original, pointer) } };
}
