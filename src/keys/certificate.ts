// Certificates: a SKIP name (or a CA label) bound to a public key by an organization CA's
// Ed25519 signature. Byte layout: docs/certificates.md.
import { sodium } from './sodium.js';
import { armor, ArmorLabel, dearmor } from './armor.js';
import { formatName, type SkipName } from './names.js';
import { NSID_IPV4, NSID_NONE } from '../wire/skip.js';
import { readIp, writeIp } from '../wire/addr.js';

/** Private-use NSID (250–255) naming a CA by a text label. */
export const NSID_CA_LABEL = 255;
export const CERT_MAGIC = Uint8Array.of(0x4d, 0x49, 0x50, 0x43); // 'MIPC'
export const CERT_VERSION = 1;
export const KeyType = { x25519: 1, ed25519: 2 } as const;
export const PUBLIC_KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const MAX_LABEL_BYTES = 64;
/** Bytes of a certificate after its subject: serial, notBefore, notAfter, key, issuer, signature. */
const TAIL_BYTES = 3 * 8 + 2 * PUBLIC_KEY_BYTES + SIGNATURE_BYTES;
/** 9999-12-31T23:59:59Z: later times are refused so that every date prints. */
export const MAX_TIME = 253402300799;

export interface CaSubject {
  nsid: typeof NSID_CA_LABEL;
  label: string;
}
export type Subject = SkipName | CaSubject;

export interface Certificate {
  subject: Subject;
  /** X25519 for an SGW/SMN, Ed25519 for a CA. */
  publicKey: Uint8Array;
  serial: bigint;
  /** Unix seconds, inclusive. */
  notBefore: number;
  notAfter: number;
  /** The issuing CA's Ed25519 public key (a CA certificate is self-signed: issuer = publicKey). */
  issuer: Uint8Array;
  signature: Uint8Array;
  /** The whole binary encoding, signature included. */
  encoded: Uint8Array;
}

export interface CaKey {
  /** libsodium's 64-byte Ed25519 secret key (seed ‖ public key). */
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

export const isCaSubject = (s: Subject): s is CaSubject => s.nsid === NSID_CA_LABEL;

export function subjectText(s: Subject): string {
  return isCaSubject(s) ? `ca:${s.label}` : formatName(s);
}

function subjectBytes(s: Subject): Uint8Array {
  if (isCaSubject(s)) return new TextEncoder().encode(s.label);
  const out = new Uint8Array(4);
  writeIp(out, 0, s.address);
  return out;
}

export interface CertificateFields {
  subject: Subject;
  publicKey: Uint8Array;
  serial: bigint;
  notBefore: number;
  notAfter: number;
}

/** Signs `fields` with the CA key. Throws RangeError on fields no decoder would accept. */
export function issueCertificate(fields: CertificateFields, ca: CaKey): Certificate {
  const subject = subjectBytes(fields.subject);
  if (isCaSubject(fields.subject) && (subject.length < 1 || subject.length > MAX_LABEL_BYTES)) {
    throw new RangeError(`CA label must be 1..${MAX_LABEL_BYTES} bytes of UTF-8, got ${subject.length}`);
  }
  if (fields.publicKey.length !== PUBLIC_KEY_BYTES)
    throw new RangeError(`public key must be ${PUBLIC_KEY_BYTES} bytes`);
  if (!isCaSubject(fields.subject) && isLowOrderX25519(fields.publicKey)) {
    throw new RangeError(
      'the X25519 public key is a low-order point (every shared secret with it would be zero); generate a new key ' +
        'with mipsec keygen',
    );
  }
  if (fields.serial < 0n || fields.serial >= 1n << 64n) throw new RangeError('serial must fit in 64 bits');
  checkTimes(fields.notBefore, fields.notAfter);
  const out = new Uint8Array(8 + subject.length + TAIL_BYTES);
  const view = new DataView(out.buffer);
  out.set(CERT_MAGIC, 0);
  out[4] = CERT_VERSION;
  out[5] = isCaSubject(fields.subject) ? KeyType.ed25519 : KeyType.x25519;
  out[6] = fields.subject.nsid;
  out[7] = subject.length;
  out.set(subject, 8);
  let at = 8 + subject.length;
  view.setBigUint64(at, fields.serial);
  view.setBigUint64(at + 8, BigInt(fields.notBefore));
  view.setBigUint64(at + 16, BigInt(fields.notAfter));
  out.set(fields.publicKey, at + 24);
  out.set(ca.publicKey, at + 24 + PUBLIC_KEY_BYTES);
  at += 24 + 2 * PUBLIC_KEY_BYTES;
  out.set(sodium.crypto_sign_detached(out.subarray(0, at), ca.secretKey), at);
  const decoded = decodeCertificate(out);
  if (!decoded.ok) throw new RangeError(`certificate would not decode: ${decoded.error}`);
  return decoded.cert;
}

/** A low-order X25519 point makes every shared secret all-zero; libsodium refuses those. */
function isLowOrderX25519(publicKey: Uint8Array): boolean {
  const probe = sodium.randombytes_buf(32);
  try {
    sodium.memzero(sodium.crypto_scalarmult(probe, publicKey));
    return false;
  } catch {
    return true;
  } finally {
    sodium.memzero(probe);
  }
}

function checkTimes(notBefore: number, notAfter: number): void {
  for (const [name, t] of [
    ['notBefore', notBefore],
    ['notAfter', notAfter],
  ] as const) {
    if (!Number.isSafeInteger(t) || t < 0 || t > MAX_TIME)
      throw new RangeError(`${name} must be unix seconds in 0..${MAX_TIME}`);
  }
  if (notAfter < notBefore) throw new RangeError('notAfter is before notBefore');
}

export type CertificateDecode = { ok: true; cert: Certificate } | { ok: false; error: string };

/** Parses a binary certificate; every length is checked, nothing is read past `bytes`. */
export function decodeCertificate(bytes: Uint8Array): CertificateDecode {
  const fail = (error: string): CertificateDecode => ({ ok: false, error });
  if (bytes.length < 8) return fail(`certificate truncated: ${bytes.length} bytes, the fixed header alone is 8`);
  for (let i = 0; i < CERT_MAGIC.length; i++)
    if (bytes[i] !== CERT_MAGIC[i]) return fail("not a mipsec certificate (magic is not 'MIPC')");
  if (bytes[4] !== CERT_VERSION)
    return fail(`certificate version ${bytes[4]} is not supported (this build reads version ${CERT_VERSION})`);
  const keyType = bytes[5];
  const nsid = bytes[6];
  const subjectLength = bytes[7];
  if (nsid === NSID_NONE || nsid === NSID_IPV4) {
    if (keyType !== KeyType.x25519)
      return fail(
        `certificate for NSID ${nsid} must carry an X25519 key (key type ${KeyType.x25519}), has key type ${keyType}`,
      );
    if (subjectLength !== 4)
      return fail(`certificate subject for NSID ${nsid} must be a 4-byte IPv4 address, length is ${subjectLength}`);
  } else if (nsid === NSID_CA_LABEL) {
    if (keyType !== KeyType.ed25519)
      return fail(`CA certificate must carry an Ed25519 key (key type ${KeyType.ed25519}), has key type ${keyType}`);
    if (subjectLength < 1 || subjectLength > MAX_LABEL_BYTES)
      return fail(`CA label length ${subjectLength} is outside 1..${MAX_LABEL_BYTES}`);
  } else {
    return fail(`certificate subject NSID ${nsid} is not supported (0 SGW, 1 SMN, ${NSID_CA_LABEL} CA)`);
  }
  const expected = 8 + subjectLength + TAIL_BYTES;
  if (bytes.length < expected) return fail(`certificate truncated: ${bytes.length} bytes, expected ${expected}`);
  if (bytes.length > expected)
    return fail(`certificate has ${bytes.length - expected} bytes of trailing data after its ${expected} bytes`);
  let subject: Subject;
  if (nsid === NSID_CA_LABEL) {
    let label: string;
    try {
      label = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + subjectLength));
    } catch {
      return fail('CA label is not valid UTF-8');
    }
    // eslint-disable-next-line no-control-regex -- matching control characters is this check's purpose
    if (/[\u0000-\u001f\u007f]/.test(label)) return fail('CA label contains control characters');
    subject = { nsid: NSID_CA_LABEL, label };
  } else {
    subject = { nsid, address: readIp(bytes, 8) };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 8 + subjectLength;
  const serial = view.getBigUint64(at);
  const notBefore = view.getBigUint64(at + 8);
  const notAfter = view.getBigUint64(at + 16);
  if (notBefore > BigInt(MAX_TIME) || notAfter > BigInt(MAX_TIME))
    return fail(`certificate validity runs past ${MAX_TIME} (year 9999)`);
  if (notAfter < notBefore) return fail('certificate notAfter is before its notBefore');
  at += 24;
  const publicKey = bytes.slice(at, at + PUBLIC_KEY_BYTES);
  const issuer = bytes.slice(at + PUBLIC_KEY_BYTES, at + 2 * PUBLIC_KEY_BYTES);
  const signature = bytes.slice(at + 2 * PUBLIC_KEY_BYTES);
  if (nsid === NSID_CA_LABEL && !sodium.memcmp(publicKey, issuer))
    return fail('CA certificate is not self-signed (issuer differs from its key)');
  return {
    ok: true,
    cert: {
      subject,
      publicKey,
      serial,
      notBefore: Number(notBefore),
      notAfter: Number(notAfter),
      issuer,
      signature,
      encoded: bytes.slice(),
    },
  };
}

export type CertificateCheck =
  | { ok: true }
  | {
      ok: false;
      reason: 'not_a_ca' | 'foreign_ca' | 'bad_signature' | 'not_yet_valid' | 'expired' | 'ca_not_valid';
      message: string;
    };

export const isoTime = (unix: number): string => new Date(unix * 1000).toISOString().replace('.000Z', 'Z');

/** Same subject, key, serial, validity, issuer and signature? */
function sameCertificate(a: Certificate, b: Certificate): boolean {
  const sameSubject =
    isCaSubject(a.subject) || isCaSubject(b.subject)
      ? isCaSubject(a.subject) && isCaSubject(b.subject) && a.subject.label === b.subject.label
      : a.subject.nsid === b.subject.nsid && a.subject.address === b.subject.address;
  return (
    sameSubject &&
    a.serial === b.serial &&
    a.notBefore === b.notBefore &&
    a.notAfter === b.notAfter &&
    Buffer.compare(a.publicKey, b.publicKey) === 0 &&
    Buffer.compare(a.issuer, b.issuer) === 0 &&
    Buffer.compare(a.signature, b.signature) === 0
  );
}

/**
 * Is `cert` signed by the CA of `caCert`, and are both valid at `at` (unix seconds)? The checks
 * run on the signed bytes (`encoded`); fields that disagree with them fail as 'bad_signature'.
 */
export function verifyCertificate(cert: Certificate, caCert: Certificate, at: number): CertificateCheck {
  const signedForm = decodeCertificate(cert.encoded);
  if (!signedForm.ok || !sameCertificate(cert, signedForm.cert)) {
    return { ok: false, reason: 'bad_signature', message: 'the certificate fields do not match its signed bytes' };
  }
  if (!isCaSubject(caCert.subject))
    return {
      ok: false,
      reason: 'not_a_ca',
      message: `the trust anchor ${subjectText(caCert.subject)} is not a CA certificate`,
    };
  if (!sodium.memcmp(cert.issuer, caCert.publicKey)) {
    return {
      ok: false,
      reason: 'foreign_ca',
      message:
        `issued by another CA (issuer key ${shortKey(cert.issuer)}, trusted CA ${caCert.subject.label} has ` +
        `${shortKey(caCert.publicKey)})`,
    };
  }
  const signed = cert.encoded.subarray(0, cert.encoded.length - SIGNATURE_BYTES);
  if (!sodium.crypto_sign_verify_detached(cert.signature, signed, caCert.publicKey)) {
    return {
      ok: false,
      reason: 'bad_signature',
      message: 'the CA signature does not verify (the certificate was altered or forged)',
    };
  }
  if (at < caCert.notBefore || at > caCert.notAfter) {
    return {
      ok: false,
      reason: 'ca_not_valid',
      message:
        `the CA certificate is valid ${isoTime(caCert.notBefore)} to ${isoTime(caCert.notAfter)}, not at ` +
        `${isoTime(at)}`,
    };
  }
  if (at < cert.notBefore)
    return {
      ok: false,
      reason: 'not_yet_valid',
      message: `not valid before ${isoTime(cert.notBefore)} (checked at ${isoTime(at)})`,
    };
  if (at > cert.notAfter)
    return {
      ok: false,
      reason: 'expired',
      message: `expired at ${isoTime(cert.notAfter)} (checked at ${isoTime(at)})`,
    };
  return { ok: true };
}

/** First 8 bytes of a public key in hex: enough to tell keys apart in a message. */
export function shortKey(key: Uint8Array): string {
  return Buffer.from(key.subarray(0, 8)).toString('hex');
}

export function certificateToArmor(cert: Certificate): string {
  return new TextDecoder().decode(armor(ArmorLabel.certificate, cert.encoded));
}

export function certificateFromArmor(text: Uint8Array): CertificateDecode {
  const body = dearmor(ArmorLabel.certificate, text);
  return body.ok ? decodeCertificate(body.body) : { ok: false, error: body.error };
}

/** A plain-data view for `mipsec cert show --json` and logs (public data only). */
export function certificateSummary(cert: Certificate): Record<string, string | number> {
  return {
    subject: subjectText(cert.subject),
    nsid: cert.subject.nsid,
    keyType: isCaSubject(cert.subject) ? 'ed25519' : 'x25519',
    publicKey: Buffer.from(cert.publicKey).toString('hex'),
    serial: cert.serial.toString(16).padStart(16, '0'),
    notBefore: isoTime(cert.notBefore),
    notAfter: isoTime(cert.notAfter),
    issuer: Buffer.from(cert.issuer).toString('hex'),
    signature: Buffer.from(cert.signature).toString('hex'),
    bytes: cert.encoded.length,
  };
}
