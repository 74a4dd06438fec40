// Authentication Header (RFC 4302 §2): next header, payload length, reserved, SPI, sequence number, ICV.
import type { MacAlg } from './algorithms.js';
import { readU32, writeU32 } from './addr.js';

export const AH_FIXED_BYTES = 12;
/** AES-GMAC Authentication Data starts with its 8-byte IV (RFC 4543 §3). */
export const AH_GMAC_IV_OFFSET = AH_FIXED_BYTES;
export const AH_GMAC_IV_BYTES = 8;

/** Authentication Data bytes per MAC: HMAC-SHA-256-128 = 16-byte ICV; AES-GMAC (RFC 4543) = IV (8) ‖ tag (16). */
export const AH_AUTH_DATA_BYTES: Readonly<Record<MacAlg, number>> = { 'hmac-sha256-128': 16, 'gmac-aes128': 24 };
/** Whole AH per MAC: 28 and 36 bytes, both multiples of 4 (no padding needed for IPv4). */
export const AH_BYTES: Readonly<Record<MacAlg, number>> = {
  'hmac-sha256-128': AH_FIXED_BYTES + AH_AUTH_DATA_BYTES['hmac-sha256-128'],
  'gmac-aes128': AH_FIXED_BYTES + AH_AUTH_DATA_BYTES['gmac-aes128'],
};

export interface AhHeader {
  nextHeader: number;
  /** Whole AH in bytes: (payload length + 2) · 4. */
  length: number;
  spi: number;
  seq: number;
}

export type AhParse = { ok: true; header: AhHeader } | { ok: false; reason: 'truncated' | 'bad_ah' };

/**
 * Parses the AH at `offset`, never reading at or past `end`. With `expectedLength` (the SA's algorithm)
 * a different payload length is bad_ah even when the claimed AH would also run past the packet.
 * Order: 12 bytes → truncated; length (< 12, or ≠ expected) → bad_ah; reserved ≠ 0 → bad_ah; whole AH → truncated.
 */
export function parseAh(buf: Uint8Array, offset: number, end = buf.length, expectedLength?: number): AhParse {
  if (end - offset < AH_FIXED_BYTES) return { ok: false, reason: 'truncated' };
  const length = (buf[offset + 1] + 2) * 4;
  if (length < AH_FIXED_BYTES || (expectedLength !== undefined && length !== expectedLength))
    return { ok: false, reason: 'bad_ah' };
  if (buf[offset + 2] !== 0 || buf[offset + 3] !== 0) return { ok: false, reason: 'bad_ah' };
  if (end - offset < length) return { ok: false, reason: 'truncated' };
  return {
    ok: true,
    header: { nextHeader: buf[offset], length, spi: readU32(buf, offset + 4), seq: readU32(buf, offset + 8) },
  };
}

/** Writes the AH fixed part at `offset` and zeroes its Authentication Data. */
export function writeAhHeader(buf: Uint8Array, offset: number, h: AhHeader): void {
  if (h.length < AH_FIXED_BYTES || h.length % 4 !== 0)
    throw new RangeError(`AH length must be a multiple of 4 and at least 12, got ${h.length}`);
  buf[offset] = h.nextHeader;
  buf[offset + 1] = h.length / 4 - 2;
  buf[offset + 2] = 0;
  buf[offset + 3] = 0;
  writeU32(buf, offset + 4, h.spi);
  writeU32(buf, offset + 8, h.seq);
  buf.fill(0, offset + AH_FIXED_BYTES, offset + h.length);
}
