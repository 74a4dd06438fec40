// The AH ICV (RFC 4302 §3.3.3 as docs/engine.md §6 fixes it) and what a next-hop AH covers (§7).
import { timingSafeEqual } from 'node:crypto';
import { AH_GMAC_IV_BYTES, AH_GMAC_IV_OFFSET, writeAhHeader } from '../../wire/ah.js';
import { IPV4_HEADER_BYTES, IpProto } from '../../wire/ipv4.js';
import { IPPROTO_SKIP, decodeSkipHeader } from '../../wire/skip.js';
import type { Coverage, ReasonName } from '../types.js';
import { TAG_BYTES, ivFromSeq, macTag } from './crypto.js';
import type { AhState } from './sa.js';

/** RFC 4302 App. A: option types kept in the ICV input; every other option is zeroed over its length. */
const IMMUTABLE_OPTIONS = new Set([0, 1, 130, 133, 134, 148, 149]);
/** Bytes of an ESP header the `headers` coverage takes: SPI, sequence number, IV. */
const ESP_COVERED_BYTES = 16;

/**
 * Zeroes mutable options in header[20, headerLength). EOL and NOP are single bytes (the walk goes on after EOL);
 * an option whose length byte is missing, < 2 or runs past the header zeroes the rest of the options.
 */
function zeroMutableOptions(header: Uint8Array, headerLength: number): void {
  let i = IPV4_HEADER_BYTES;
  while (i < headerLength) {
    const type = header[i];
    if (type === 0 || type === 1) {
      i++;
      continue;
    }
    const length = i + 1 < headerLength ? header[i + 1] : 0;
    if (length < 2 || i + length > headerLength) {
      header.fill(0, i, headerLength);
      return;
    }
    if (!IMMUTABLE_OPTIONS.has(type)) header.fill(0, i, i + length);
    i += length;
  }
}

export interface AhLayout {
  /** Start of the outer IPv4 header. */
  ipOffset: number;
  ipHeaderLength: number;
  /** 0 in spi mode. */
  skipLength: number;
  /** End of the covered payload. */
  coveredEnd: number;
}

/**
 * The ICV input: a copy of the outer IPv4 header (TOS, flags+fragment, TTL, checksum zeroed, options per App. A),
 * the SKIP header (reserved nibble zeroed), the AH with its 16 tag bytes zeroed (a GMAC IV stays), and the payload.
 */
export function icvInput(buf: Uint8Array, ah: AhState, l: AhLayout): Uint8Array {
  const input = Uint8Array.from(buf.subarray(l.ipOffset, l.coveredEnd));
  input[1] = 0;
  input[6] = 0;
  input[7] = 0;
  input[8] = 0;
  input[10] = 0;
  input[11] = 0;
  zeroMutableOptions(input, l.ipHeaderLength);
  if (l.skipLength > 0) input[l.ipHeaderLength] &= 0xf0;
  const ahEnd = l.ipHeaderLength + l.skipLength + ah.length;
  input.fill(0, ahEnd - TAG_BYTES, ahEnd);
  return input;
}

function tagFor(buf: Uint8Array, ah: AhState, l: AhLayout): Buffer {
  const ivAt = l.ipOffset + l.ipHeaderLength + l.skipLength + AH_GMAC_IV_OFFSET;
  return macTag(ah.alg, ah.key, icvInput(buf, ah, l), buf.subarray(ivAt, ivAt + AH_GMAC_IV_BYTES));
}

/** Writes an outbound AH at `at`: fixed fields, the GMAC IV (64-bit big-endian seq), a zero tag. */
export function writeOutboundAh(buf: Uint8Array, at: number, ah: AhState, nextHeader: number, seq: number): void {
  writeAhHeader(buf, at, { nextHeader, length: ah.length, spi: ah.spi, seq });
  if (ah.alg === 'gmac-aes128') buf.set(ivFromSeq(seq), at + AH_GMAC_IV_OFFSET);
}

/** Computes the tag and writes it into the AH (whose other fields, GMAC IV included, are already in place). */
export function signAh(buf: Uint8Array, ah: AhState, l: AhLayout): void {
  const ahEnd = l.ipOffset + l.ipHeaderLength + l.skipLength + ah.length;
  buf.set(tagFor(buf, ah, l), ahEnd - TAG_BYTES);
}

export function verifyAh(buf: Uint8Array, ah: AhState, l: AhLayout): boolean {
  const ahEnd = l.ipOffset + l.ipHeaderLength + l.skipLength + ah.length;
  return timingSafeEqual(tagFor(buf, ah, l), buf.subarray(ahEnd - TAG_BYTES, ahEnd));
}

export type CoverageEnd = { ok: true; end: number } | { ok: false; reason: ReasonName };

/**
 * End of what a next-hop AH covers of the datagram buf[start, end). `full`: all of it. `headers`: walk IPv4
 * (4·IHL) → [SKIP] → [whole AH; next 4 → another IPv4, walk on] → ESP's first 16 bytes; a walk that ends
 * anywhere else covers the whole datagram. Past `end` or IHL < 5 → truncated; SKIP parse failures keep their reason.
 */
export function coverageEnd(coverage: Coverage, buf: Uint8Array, start: number, end: number): CoverageEnd {
  if (coverage === 'full') return { ok: true, end };
  let at = start;
  for (;;) {
    if (end - at < IPV4_HEADER_BYTES) return { ok: false, reason: 'truncated' };
    const ihl = (buf[at] & 0x0f) * 4;
    if (ihl < IPV4_HEADER_BYTES || end - at < ihl) return { ok: false, reason: 'truncated' };
    let next = buf[at + 9];
    at += ihl;
    if (next === IPPROTO_SKIP) {
      const skip = decodeSkipHeader(buf, at, end);
      if (!skip.ok) return skip;
      at += skip.length;
      next = skip.header.nextHeader;
    }
    if (next === IpProto.AH) {
      if (end - at < 2) return { ok: false, reason: 'truncated' };
      const ahLength = (buf[at + 1] + 2) * 4;
      if (end - at < ahLength) return { ok: false, reason: 'truncated' };
      next = buf[at];
      at += ahLength;
      if (next === IpProto.IPIP) continue;
    }
    if (next === IpProto.ESP) {
      if (end - at < ESP_COVERED_BYTES) return { ok: false, reason: 'truncated' };
      return { ok: true, end: at + ESP_COVERED_BYTES };
    }
    // No ESP ends the walk: nothing else protects the payload, so the layer covers the whole datagram.
    return { ok: true, end };
  }
}
