// Shared test fixtures for test/keys: a CA, SGW and SMN identities, all in memory.
import {
  isCaSubject,
  issueCertificate,
  NSID_CA_LABEL,
  type CaKey,
  type Certificate,
} from '../../src/keys/certificate.js';
import { generateCaKey, generateX25519, type Identity } from '../../src/keys/keyfile.js';
import { parseName, type SkipName } from '../../src/keys/names.js';

export const T0 = Date.parse('2026-11-27T12:30:00Z') / 1000;
export const YEAR = 365 * 86400;

export interface TestCa {
  key: CaKey;
  cert: Certificate;
}

export function makeCa(label = 'Test CA', notBefore = T0 - YEAR, notAfter = T0 + 10 * YEAR): TestCa {
  const { key } = generateCaKey();
  const cert = issueCertificate(
    { subject: { nsid: NSID_CA_LABEL, label }, publicKey: key.publicKey, serial: 1n, notBefore, notAfter },
    key,
  );
  return { key, cert };
}

let serial = 100n;

export function makeIdentity(ca: TestCa, nameText: string, notBefore = T0 - 86400, notAfter = T0 + YEAR): Identity {
  const parsed = parseName(nameText);
  if (!parsed.ok) throw new Error(parsed.error);
  const pair = generateX25519();
  const cert = issueCertificate(
    { subject: parsed.name, publicKey: pair.publicKey, serial: serial++, notBefore, notAfter },
    ca.key,
  );
  return { name: parsed.name, secretKey: pair.secretKey, publicKey: pair.publicKey, cert };
}

export const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex');
export const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

/** The SKIP name of a node certificate. */
export function nodeName(cert: Certificate): SkipName {
  if (isCaSubject(cert.subject)) throw new Error('expected a node certificate');
  return cert.subject;
}
