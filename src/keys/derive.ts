// SKIP key derivations with modern primitives (docs/skip-keying.md, spec/wire-formats.md §4.4):
// X25519 for the shared secret, BLAKE2b-512 where SKIP used MD5, AES-256 Key Wrap for Kp.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { sodium } from './sodium.js';
import { SkipAlg } from '../wire/algorithms.js';
import { WRAPPED_KP_BYTES } from '../wire/skip.js';

/** 1995-01-01T00:00:00Z, SKIP's counter epoch; the counter counts hours. */
export const SKIP_EPOCH_UNIX = 788918400;
export const SKIP_COUNTER_SECONDS = 3600;
/** A receiver accepts a counter n within this distance of its own. */
export const COUNTER_WINDOW = 1;
export const KIJ_BYTES = 32;
export const KIJN_BYTES = 32;
export const KP_BYTES = 32;
/** 40: a 32-byte Kp plus RFC 3394's 8-byte integrity block. */
export const WRAPPED_BYTES = WRAPPED_KP_BYTES[SkipAlg.kij['aes256-kw']];
/** BLAKE2b's full output; every key is its low-order (last) bytes, SKIP-style. */
export const HASH_BYTES = 64;
/** SKIP's purpose bytes of the low-order hash of E_kp (0x00) and A_kp (0x01). */
export const Purpose = { crypt: 0x00, mac: 0x01 } as const;
/** RFC 3394 §2.2.3.1 default initial value. */
const KEY_WRAP_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');
const KEY_WRAP_CIPHER = 'id-aes256-wrap';

/** n = floor((unix − 788918400) / 3600). Unix seconds before 1995 give a RangeError. */
export function skipCounter(unixSeconds: number): number {
  if (!Number.isFinite(unixSeconds) || unixSeconds < SKIP_EPOCH_UNIX)
    throw new RangeError(`time ${unixSeconds} is before the SKIP epoch 1995-01-01`);
  return Math.floor((unixSeconds - SKIP_EPOCH_UNIX) / SKIP_COUNTER_SECONDS);
}

export function counterInWindow(n: number, localN: number): boolean {
  return Math.abs(n - localN) <= COUNTER_WINDOW;
}

/** The last `length` bytes of BLAKE2b-512(parts…); the full hash and the input are zeroed. */
export function lowOrderHash(length: number, ...parts: Uint8Array[]): Uint8Array {
  if (length > HASH_BYTES) throw new RangeError(`a key of ${length} bytes is longer than one BLAKE2b-512 output`);
  const input = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let at = 0;
  for (const p of parts) {
    input.set(p, at);
    at += p.length;
  }
  const hash = sodium.crypto_generichash(HASH_BYTES, input, null);
  const out = hash.slice(HASH_BYTES - length);
  sodium.memzero(input);
  sodium.memzero(hash);
  return out;
}

/**
 * Both public keys, the lexicographically lower one (first differing byte) first, so that both
 * peers hash the same bytes. Public keys are not secret: a plain comparison is fine.
 */
export function canonicalPair(a: Uint8Array, b: Uint8Array): [Uint8Array, Uint8Array] {
  return Buffer.compare(a, b) <= 0 ? [a, b] : [b, a];
}

/**
 * Kij = low-order 32 bytes of BLAKE2b-512(X25519(own secret, peer public) | lower public | higher public).
 * Returns undefined when the peer key is a low-order point (the shared secret would be all zero).
 */
export function deriveKij(
  ownSecret: Uint8Array,
  ownPublic: Uint8Array,
  peerPublic: Uint8Array,
): Uint8Array | undefined {
  let shared: Uint8Array;
  try {
    shared = sodium.crypto_scalarmult(ownSecret, peerPublic);
  } catch {
    return undefined;
  }
  try {
    const [lower, higher] = canonicalPair(ownPublic, peerPublic);
    return lowOrderHash(KIJ_BYTES, shared, lower, higher);
  } finally {
    sodium.memzero(shared);
  }
}

/** Kijn = low-order 32 bytes of BLAKE2b-512(Kij | n as u32 big-endian | 0x00). */
export function deriveKijn(kij: Uint8Array, n: number): Uint8Array {
  const counter = new Uint8Array(4);
  new DataView(counter.buffer).setUint32(0, n >>> 0);
  return lowOrderHash(KIJN_BYTES, kij, counter, Uint8Array.of(0x00));
}

/** AES-256 Key Wrap (RFC 3394, default IV) of the 32-byte Kp under Kijn → 40 bytes. */
export function wrapKp(kijn: Uint8Array, kp: Uint8Array): Uint8Array {
  if (kijn.length !== KIJN_BYTES || kp.length !== KP_BYTES)
    throw new RangeError(`key wrap needs a ${KIJN_BYTES}-byte Kijn and a ${KP_BYTES}-byte Kp`);
  const cipher = createCipheriv(KEY_WRAP_CIPHER, kijn, KEY_WRAP_IV);
  const out = Buffer.concat([cipher.update(kp), cipher.final()]);
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** Node's OpenSSL through node:crypto: a cipher object per call. */
function nodeKeyUnwrap(kek: Uint8Array, wrapped: Uint8Array): Uint8Array {
  const decipher = createDecipheriv(KEY_WRAP_CIPHER, kek, KEY_WRAP_IV);
  return Buffer.concat([decipher.update(wrapped), decipher.final()]);
}

/** The 40-byte wrapped Kp unwrapped under `kijn` (RFC 3394); undefined when its integrity check fails (forged). */
export function unwrapKp(kijn: Uint8Array, wrapped: Uint8Array): Uint8Array | undefined {
  if (kijn.length !== KIJN_BYTES || wrapped.length !== WRAPPED_BYTES) return undefined;
  let plain: Uint8Array;
  try {
    plain = nodeKeyUnwrap(kijn, wrapped);
  } catch {
    return undefined;
  }
  const kp = plain.length === KP_BYTES ? Uint8Array.from(plain) : undefined;
  plain.fill(0);
  return kp;
}

/**
 * E_kp = low-order `length` bytes of BLAKE2b-512(Kp | CryptAlg | 0x00),
 * A_kp = low-order `length` bytes of BLAKE2b-512(Kp | MACAlg | 0x01).
 */
export function trafficKey(kp: Uint8Array, alg: number, purpose: keyof typeof Purpose, length: number): Uint8Array {
  return lowOrderHash(length, kp, Uint8Array.of(alg), Uint8Array.of(Purpose[purpose]));
}

/** A traffic key to derive from Kp: its algorithm number (SKIP's Crypt or MAC Alg) and length in bytes. */
export interface TrafficKeySpec {
  alg: number;
  length: number;
}

/** Kp and the traffic keys of a received packet key; the caller zeroes all three once they are installed. */
export interface PacketKeys {
  kp: Uint8Array;
  crypt?: Uint8Array;
  mac?: Uint8Array;
}

/**
 * Kp unwrapped from a received SKIP header under Kijn and the E_kp / A_kp it gives (a spec left out, that key too);
 * undefined when the wrapped Kp fails its integrity check. The roles pass the addon's one-call version
 * (src/engine/addon.ts nativePacketKeys); this one is the reference and the default.
 */
export type PacketKeyDerivation = (
  kijn: Uint8Array,
  wrapped: Uint8Array,
  crypt: TrafficKeySpec | undefined,
  mac: TrafficKeySpec | undefined,
) => PacketKeys | undefined;

export const packetKeys: PacketKeyDerivation = (kijn, wrapped, crypt, mac) => {
  const kp = unwrapKp(kijn, wrapped);
  if (!kp) return undefined;
  const keys: PacketKeys = { kp };
  if (crypt) keys.crypt = trafficKey(kp, crypt.alg, 'crypt', crypt.length);
  if (mac) keys.mac = trafficKey(kp, mac.alg, 'mac', mac.length);
  return keys;
};
