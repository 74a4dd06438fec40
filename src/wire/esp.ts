// ESP framing (RFC 4303 §2) for AEAD suites with an explicit 8-byte IV and a 16-byte ICV (RFC 4106, RFC 7634).
import { readU32, writeU32 } from './addr.js';

export const ESP_HEADER_BYTES = 8;
export const ESP_IV_BYTES = 8;
export const ESP_ICV_BYTES = 16;
/** Pad Length + Next Header. */
export const ESP_TRAILER_BYTES = 2;
/** SPI, sequence, IV, the two trailer bytes (no payload, no padding) and the ICV. */
export const ESP_MIN_BYTES = ESP_HEADER_BYTES + ESP_IV_BYTES + ESP_TRAILER_BYTES + ESP_ICV_BYTES;

export interface EspFrame {
  spi: number;
  seq: number;
  ivOffset: number;
  ciphertextOffset: number;
  /** End of the ciphertext = start of the ICV. */
  ciphertextEnd: number;
}

export type EspParse = { ok: true; frame: EspFrame } | { ok: false; reason: 'truncated' | 'bad_esp' };

/**
 * Frames the ESP packet in buf[offset, end): fewer than 8 bytes → truncated; too short for IV, trailer and ICV →
 * bad_esp.
 */
export function parseEsp(buf: Uint8Array, offset: number, end = buf.length): EspParse {
  if (end - offset < ESP_HEADER_BYTES) return { ok: false, reason: 'truncated' };
  if (end - offset < ESP_MIN_BYTES) return { ok: false, reason: 'bad_esp' };
  return {
    ok: true,
    frame: {
      spi: readU32(buf, offset),
      seq: readU32(buf, offset + 4),
      ivOffset: offset + ESP_HEADER_BYTES,
      ciphertextOffset: offset + ESP_HEADER_BYTES + ESP_IV_BYTES,
      ciphertextEnd: end - ESP_ICV_BYTES,
    },
  };
}

export function writeEspHeader(buf: Uint8Array, offset: number, spi: number, seq: number): void {
  writeU32(buf, offset, spi);
  writeU32(buf, offset + 4, seq);
}

/** Padding bytes so that payload + padding + 2 is a multiple of 4 (the least such). */
export function espPadLength(payloadLength: number): number {
  return (4 - ((payloadLength + ESP_TRAILER_BYTES) % 4)) % 4;
}

/** Writes padding 1, 2, 3 …, Pad Length and Next Header at `offset`; returns the bytes written. */
export function writeEspTrailer(buf: Uint8Array, offset: number, padLength: number, nextHeader: number): number {
  for (let i = 0; i < padLength; i++) buf[offset + i] = i + 1;
  buf[offset + padLength] = padLength;
  buf[offset + padLength + 1] = nextHeader;
  return padLength + ESP_TRAILER_BYTES;
}

export type EspTrailer = { ok: true; payloadEnd: number; nextHeader: number } | { ok: false; reason: 'bad_esp' };

/** Checks the trailer of the plaintext buf[start, end): pad length fits and the padding bytes are 1, 2, 3 … */
export function checkEspTrailer(buf: Uint8Array, start: number, end: number): EspTrailer {
  if (end - start < ESP_TRAILER_BYTES) return { ok: false, reason: 'bad_esp' };
  const padLength = buf[end - 2];
  const payloadEnd = end - ESP_TRAILER_BYTES - padLength;
  if (payloadEnd < start) return { ok: false, reason: 'bad_esp' };
  for (let i = 0; i < padLength; i++) if (buf[payloadEnd + i] !== i + 1) return { ok: false, reason: 'bad_esp' };
  return { ok: true, payloadEnd, nextHeader: buf[end - 1] };
}
