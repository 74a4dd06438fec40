// Key files. Private keys: written 0600, atomically and never over an existing file; refused on
// load when group or others can read them. Secret bytes are zeroed once decoded or written.
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  linkSync,
  openSync,
  readSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { sodium } from './sodium.js';
import { armor, ArmorLabel, dearmor, type ArmorLabelText } from './armor.js';
import { certificateFromArmor, isCaSubject, shortKey, type CaKey, type Certificate } from './certificate.js';
import type { SkipName } from './names.js';

export class KeyFileError extends Error {
  override name = 'KeyFileError';
}

export const SECRET_FILE_MODE = 0o600;
export const PUBLIC_FILE_MODE = 0o644;
const KEY_BYTES = 32;
/** Key and certificate files are small; anything bigger is not one of ours. */
const MAX_FILE_BYTES = 64 * 1024;

/** What a node keys with: its SKIP name, X25519 key pair and the certificate binding them. */
export interface Identity {
  name: SkipName;
  secretKey: Uint8Array;
  publicKey: Uint8Array;
  cert: Certificate;
}

export interface X25519KeyPair {
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

/** Writes `data` to a temporary file in the same directory, then links it into place (fails if `path` exists). */
export function writeFileAtomic(path: string, data: Uint8Array, mode: number): void {
  const temp = join(dirname(path), `.${basename(path)}.${Buffer.from(sodium.randombytes_buf(6)).toString('hex')}.tmp`);
  let fd: number;
  try {
    fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  } catch (err) {
    throw new KeyFileError(`cannot create a file next to ${path}: ${(err as Error).message}`);
  }
  let open = true;
  try {
    let done = 0;
    while (done < data.length) done += writeSync(fd, data, done, data.length - done);
    fsyncSync(fd);
    closeSync(fd);
    open = false;
    linkSync(temp, path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new KeyFileError(
      code === 'EEXIST'
        ? `${path} already exists; remove it or choose another --out`
        : `cannot write ${path}: ${(err as Error).message}`,
    );
  } finally {
    if (open) closeSync(fd);
    unlinkSync(temp);
  }
}

/** Reads a whole file (at most 64 KiB) through one descriptor; `checkMode` sees its fstat mode first. */
function readSmallFile(path: string, checkMode?: (mode: number) => void): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new KeyFileError(
      code === 'ENOENT' ? `${path} does not exist` : `cannot open ${path}: ${(err as Error).message}`,
    );
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new KeyFileError(`${path} is not a regular file`);
    checkMode?.(stat.mode);
    if (stat.size > MAX_FILE_BYTES)
      throw new KeyFileError(`${path} is ${stat.size} bytes; key and certificate files are under ${MAX_FILE_BYTES}`);
    const data = new Uint8Array(stat.size);
    let done = 0;
    while (done < data.length) {
      const got = readSync(fd, data, done, data.length - done, done);
      if (got === 0) break;
      done += got;
    }
    return done === data.length ? data : data.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}

/** Reads a private file; refuses it when group or others have any access. */
export function readSecretFile(path: string): Uint8Array {
  return readSmallFile(path, (mode) => {
    if ((mode & 0o077) !== 0) {
      const octal = (mode & 0o777).toString(8).padStart(4, '0');
      throw new KeyFileError(
        `private key file ${path} is accessible by group or others (mode ${octal}); fix it with: chmod 600 ${path}`,
      );
    }
  });
}

export function readPublicFile(path: string): Uint8Array {
  return readSmallFile(path);
}

/** Decodes an armored 32-byte key; zeroes the file text. */
function decodeKey(path: string, label: ArmorLabelText, text: Uint8Array): Uint8Array {
  try {
    const body = dearmor(label, text);
    if (!body.ok) throw new KeyFileError(`${path} ${body.error}`);
    if (body.body.length !== KEY_BYTES) {
      sodium.memzero(body.body);
      throw new KeyFileError(`${path} holds ${body.body.length} key bytes, a ${label} has ${KEY_BYTES}`);
    }
    return body.body;
  } finally {
    sodium.memzero(text);
  }
}

function writeKey(path: string, label: ArmorLabelText, key: Uint8Array, mode: number): void {
  const text = armor(label, key);
  try {
    writeFileAtomic(path, text, mode);
  } finally {
    sodium.memzero(text);
  }
}

export function generateX25519(): X25519KeyPair {
  const pair = sodium.crypto_box_keypair();
  return { secretKey: pair.privateKey, publicKey: pair.publicKey };
}

export function x25519PublicOf(secretKey: Uint8Array): Uint8Array {
  return sodium.crypto_scalarmult_base(secretKey);
}

/** Writes FILE (private, 0600) and FILE.pub. */
export function saveX25519(path: string, pair: X25519KeyPair): void {
  writeKey(path, ArmorLabel.x25519Private, pair.secretKey, SECRET_FILE_MODE);
  writeKey(`${path}.pub`, ArmorLabel.x25519Public, pair.publicKey, PUBLIC_FILE_MODE);
}

export function loadX25519Secret(path: string): X25519KeyPair {
  const secretKey = decodeKey(path, ArmorLabel.x25519Private, readSecretFile(path));
  return { secretKey, publicKey: x25519PublicOf(secretKey) };
}

export function loadX25519Public(path: string): Uint8Array {
  return decodeKey(path, ArmorLabel.x25519Public, readPublicFile(path));
}

/** A new CA key; only its 32-byte seed is stored. */
export function generateCaKey(): { seed: Uint8Array; key: CaKey } {
  const seed = sodium.randombytes_buf(KEY_BYTES);
  return { seed, key: caKeyFromSeed(seed) };
}

export function caKeyFromSeed(seed: Uint8Array): CaKey {
  const pair = sodium.crypto_sign_seed_keypair(seed);
  return { secretKey: pair.privateKey, publicKey: pair.publicKey };
}

export function saveCaSeed(path: string, seed: Uint8Array): void {
  writeKey(path, ArmorLabel.ed25519Private, seed, SECRET_FILE_MODE);
}

export function loadCaKey(path: string): CaKey {
  const seed = decodeKey(path, ArmorLabel.ed25519Private, readSecretFile(path));
  try {
    return caKeyFromSeed(seed);
  } finally {
    sodium.memzero(seed);
  }
}

export function saveCertificate(path: string, cert: Certificate): void {
  writeFileAtomic(path, armor(ArmorLabel.certificate, cert.encoded), PUBLIC_FILE_MODE);
}

export function loadCertificate(path: string): Certificate {
  const decoded = certificateFromArmor(readPublicFile(path));
  if (!decoded.ok) throw new KeyFileError(`${path}: ${decoded.error}`);
  return decoded.cert;
}

/** A node's identity: its private key file and its certificate, which must carry the matching public key. */
export function loadIdentity(keyPath: string, certPath: string): Identity {
  const cert = loadCertificate(certPath);
  if (isCaSubject(cert.subject))
    throw new KeyFileError(`${certPath} is a CA certificate; a node identity needs an sgw: or smn: certificate`);
  const pair = loadX25519Secret(keyPath);
  if (!sodium.memcmp(pair.publicKey, cert.publicKey)) {
    sodium.memzero(pair.secretKey);
    throw new KeyFileError(
      `${certPath} certifies another key than ${keyPath} (public key ${shortKey(cert.publicKey)} vs ` +
        `${shortKey(pair.publicKey)})`,
    );
  }
  return { name: cert.subject, secretKey: pair.secretKey, publicKey: pair.publicKey, cert };
}
