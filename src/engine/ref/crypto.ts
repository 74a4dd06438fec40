// The data path's crypto on node:crypto: ESP AEADs (RFC 4106, RFC 7634) and the AH MACs (RFC 4543 GMAC, RFC 4868).
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  type CipherGCMTypes,
  type CipherChaCha20Poly1305Types,
} from 'node:crypto';
import type { EspSuite, MacAlg } from '../types.js';

export const TAG_BYTES = 16;
export const SALT_BYTES = 4;
export const IV_BYTES = 8;

const AEAD_CIPHER: Record<EspSuite, CipherGCMTypes | CipherChaCha20Poly1305Types> = {
  aes128gcm: 'aes-128-gcm',
  aes256gcm: 'aes-256-gcm',
  chacha20poly1305: 'chacha20-poly1305',
};

/** A key as the SA holds it: one private copy, split into cipher key and salt (both views of `material`). */
export interface KeyMaterial {
  material: Buffer;
  key: Buffer;
  salt: Buffer;
}

/** Copies `bytes`; the last 4 bytes are the salt when `salted`. */
export function keyMaterial(bytes: Uint8Array, salted: boolean): KeyMaterial {
  const material = Buffer.from(bytes);
  const keyEnd = salted ? material.length - SALT_BYTES : material.length;
  return { material, key: material.subarray(0, keyEnd), salt: material.subarray(keyEnd) };
}

/** The explicit IV both paths use: the 64-bit big-endian sequence number. */
export function ivFromSeq(seq: number): Buffer {
  const iv = Buffer.alloc(IV_BYTES);
  iv.writeUInt32BE(seq >>> 0, 4);
  return iv;
}

function nonce(k: KeyMaterial, iv: Uint8Array): Buffer {
  return Buffer.concat([k.salt, iv]);
}

/** Encrypts `plaintext`; returns ciphertext (same length) and the 16-byte tag. */
export function aeadSeal(
  suite: EspSuite,
  k: KeyMaterial,
  iv: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
): { ciphertext: Buffer; tag: Buffer } {
  const cipher = createCipheriv(AEAD_CIPHER[suite] as CipherGCMTypes, k.key, nonce(k, iv), {
    authTagLength: TAG_BYTES,
  });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { ciphertext, tag: cipher.getAuthTag() };
}

/** Decrypts and verifies; undefined when the tag does not match. */
export function aeadOpen(
  suite: EspSuite,
  k: KeyMaterial,
  iv: Uint8Array,
  aad: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
): Buffer | undefined {
  const decipher = createDecipheriv(AEAD_CIPHER[suite] as CipherGCMTypes, k.key, nonce(k, iv), {
    authTagLength: TAG_BYTES,
  });
  decipher.setAuthTag(tag);
  decipher.setAAD(aad);
  const plaintext = decipher.update(ciphertext);
  try {
    decipher.final();
  } catch {
    return undefined;
  }
  return plaintext;
}

/**
 * The 16-byte AH tag over `input`: HMAC-SHA-256 truncated, or GMAC (AES-GCM, empty plaintext, `input` as AAD, nonce
 * salt ‖ iv).
 */
export function macTag(alg: MacAlg, k: KeyMaterial, input: Uint8Array, iv: Uint8Array): Buffer {
  if (alg === 'hmac-sha256-128') return createHmac('sha256', k.key).update(input).digest().subarray(0, TAG_BYTES);
  const gmac = createCipheriv('aes-128-gcm', k.key, nonce(k, iv), { authTagLength: TAG_BYTES });
  gmac.setAAD(input);
  gmac.final();
  return gmac.getAuthTag();
}
