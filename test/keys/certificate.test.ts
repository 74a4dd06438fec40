// Certificates: encoding, armor, hostile decoding and verification.
import { describe, expect, it } from 'vitest';
import { armor, ArmorLabel, dearmor } from '../../src/keys/armor.js';
import {
  certificateFromArmor,
  certificateSummary,
  certificateToArmor,
  decodeCertificate,
  issueCertificate,
  NSID_CA_LABEL,
  verifyCertificate,
} from '../../src/keys/certificate.js';
import { formatName, parseName } from '../../src/keys/names.js';
import { makeCa, makeIdentity, T0, YEAR } from './helpers.js';

describe('SKIP names', () => {
  it('parses and formats sgw:/smn: names', () => {
    expect(parseName('sgw:198.18.0.1')).toEqual({ ok: true, name: { nsid: 0, address: 0xc6120001 } });
    expect(parseName('smn:10.0.0.100')).toEqual({ ok: true, name: { nsid: 1, address: 0x0a000064 } });
    expect(formatName({ nsid: 1, address: 0x0a000064 })).toBe('smn:10.0.0.100');
    for (const [bad, message] of [
      ['198.18.0.1', /must start with 'sgw:' or 'smn:'/],
      ['ha:10.0.0.1', /must start with/],
      ['sgw:10.0.0', /needs a dotted IPv4 address after 'sgw:'/],
      ['smn:', /needs a dotted IPv4/],
    ] as const) {
      const r = parseName(bad);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toMatch(message);
    }
  });
});

describe('armor', () => {
  it('round-trips every body length 0..100 in 64-character lines', () => {
    for (let len = 0; len <= 100; len++) {
      const body = Uint8Array.from({ length: len }, (_, i) => (i * 37 + len) & 0xff);
      const text = armor(ArmorLabel.certificate, body);
      const lines = new TextDecoder().decode(text).trimEnd().split('\n');
      expect(lines[0]).toBe('-----BEGIN MIPSEC CERTIFICATE-----');
      expect(lines.at(-1)).toBe('-----END MIPSEC CERTIFICATE-----');
      for (const line of lines.slice(1, -1)) expect(line.length).toBeLessThanOrEqual(64);
      expect(new TextDecoder().decode(text).replace(/-----[^-]+-----|\n/g, '')).toBe(
        Buffer.from(body).toString('base64'),
      );
      const back = dearmor(ArmorLabel.certificate, text);
      expect(back.ok && Buffer.from(back.body).equals(Buffer.from(body))).toBe(true);
    }
  });

  it('refuses wrong labels, missing lines, bad base64 and trailing data with a reason', () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    const good = '-----BEGIN MIPSEC CERTIFICATE-----\nAAEC\n-----END MIPSEC CERTIFICATE-----\n';
    expect(dearmor(ArmorLabel.certificate, enc(`\r\n  ${good.replace(/\n/g, '\r\n')}  `)).ok).toBe(true);
    const cases: [string, RegExp][] = [
      ['', /does not start with a '-----BEGIN MIPSEC CERTIFICATE-----' line/],
      ['hello', /does not start with/],
      [
        good.replace(/CERTIFICATE/g, 'X25519 PRIVATE KEY'),
        /holds a 'MIPSEC X25519 PRIVATE KEY', expected a 'MIPSEC CERTIFICATE'/,
      ],
      ['-----BEGIN MIPSEC CERTIFICATE-----\nAAEC\n', /has no '-----END MIPSEC CERTIFICATE-----' line/],
      [good.replace('AAEC', 'AA*C'), /not base64/],
      [good.replace('AAEC', 'AAE'), /not a multiple of 4/],
      [good.replace('AAEC', 'A=EC'), /not base64/],
      [good + 'extra', /data after/],
      [good.replace('END MIPSEC CERTIFICATE', 'END MIPSEC CERT'), /has no '-----END/],
    ];
    for (const [text, reason] of cases) {
      const r = dearmor(ArmorLabel.certificate, enc(text));
      expect(r.ok, text).toBe(false);
      if (!r.ok) expect(r.error).toMatch(reason);
    }
  });
});

describe('certificates', () => {
  const ca = makeCa('Example Corp CA');
  const sgw = makeIdentity(ca, 'sgw:198.18.0.1');

  it('a node certificate is 164 bytes and round-trips through binary and armor', () => {
    expect(sgw.cert.encoded).toHaveLength(164);
    expect(ca.cert.encoded).toHaveLength(160 + 'Example Corp CA'.length);
    const again = decodeCertificate(sgw.cert.encoded);
    expect(again.ok && again.cert).toEqual(sgw.cert);
    const text = certificateToArmor(sgw.cert);
    expect(text).toMatch(/^-----BEGIN MIPSEC CERTIFICATE-----\n/);
    const fromText = certificateFromArmor(new TextEncoder().encode(text));
    expect(fromText.ok && fromText.cert).toEqual(sgw.cert);
    expect(certificateSummary(sgw.cert)).toMatchObject({
      subject: 'sgw:198.18.0.1',
      nsid: 0,
      keyType: 'x25519',
      bytes: 164,
    });
  });

  it('documented byte layout (docs/certificates.md)', () => {
    const b = sgw.cert.encoded;
    expect(Buffer.from(b.subarray(0, 4)).toString('latin1')).toBe('MIPC');
    expect([b[4], b[5], b[6], b[7]]).toEqual([1, 1, 0, 4]);
    expect(Buffer.from(b.subarray(8, 12))).toEqual(Buffer.of(198, 18, 0, 1));
    const view = new DataView(b.buffer, b.byteOffset);
    expect(view.getBigUint64(12)).toBe(sgw.cert.serial);
    expect(Number(view.getBigUint64(20))).toBe(sgw.cert.notBefore);
    expect(Number(view.getBigUint64(28))).toBe(sgw.cert.notAfter);
    expect(Buffer.from(b.subarray(36, 68))).toEqual(Buffer.from(sgw.publicKey));
    expect(Buffer.from(b.subarray(68, 100))).toEqual(Buffer.from(ca.key.publicKey));
    expect(Buffer.from(b.subarray(100, 164))).toEqual(Buffer.from(sgw.cert.signature));
  });

  it('every truncation and every extension is refused with a reason', () => {
    for (let len = 0; len < sgw.cert.encoded.length; len++) {
      const r = decodeCertificate(sgw.cert.encoded.subarray(0, len));
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toMatch(/truncated/);
    }
    const longer = new Uint8Array(sgw.cert.encoded.length + 1);
    longer.set(sgw.cert.encoded);
    const r = decodeCertificate(longer);
    expect(!r.ok && r.error).toMatch(/1 bytes of trailing data/);
  });

  it('header fields are checked', () => {
    const mutate = (at: number, value: number) => {
      const b = sgw.cert.encoded.slice();
      b[at] = value;
      const r = decodeCertificate(b);
      return r.ok ? 'ok' : r.error;
    };
    expect(mutate(0, 0x58)).toMatch(/magic/);
    expect(mutate(4, 2)).toMatch(/version 2 is not supported/);
    expect(mutate(5, 2)).toMatch(/NSID 0 must carry an X25519 key/);
    expect(mutate(6, 7)).toMatch(/NSID 7 is not supported/);
    expect(mutate(6, 255)).toMatch(/CA certificate must carry an Ed25519 key/);
    expect(mutate(7, 5)).toMatch(/must be a 4-byte IPv4 address/);
    expect(mutate(20, 0xff)).toMatch(/year 9999/);
    const ca2 = ca.cert.encoded.slice();
    ca2[8] = 0xff; // invalid UTF-8 in the label
    expect(decodeCertificate(ca2)).toMatchObject({ ok: false, error: 'CA label is not valid UTF-8' });
  });

  it('random mutations never throw', () => {
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    for (let i = 0; i < 5000; i++) {
      const b = (i % 2 ? sgw.cert.encoded : ca.cert.encoded).slice(0, 8 + rand());
      for (let k = 0; k < 3; k++) b[rand() % b.length] = rand();
      const r = decodeCertificate(b);
      if (r.ok) expect(typeof verifyCertificate(r.cert, ca.cert, T0).ok).toBe('boolean');
    }
  });

  it('verifies: valid, other CA, altered bytes, expiry, not yet valid, CA expiry, not a CA', () => {
    expect(verifyCertificate(sgw.cert, ca.cert, T0)).toEqual({ ok: true });
    expect(verifyCertificate(ca.cert, ca.cert, T0)).toEqual({ ok: true });
    const other = makeCa('Other CA');
    expect(verifyCertificate(sgw.cert, other.cert, T0)).toMatchObject({ ok: false, reason: 'foreign_ca' });
    for (const at of [8, 12, 20, 28, 36, 100]) {
      const b = sgw.cert.encoded.slice();
      b[at] ^= 1;
      const r = decodeCertificate(b);
      if (r.ok)
        expect(verifyCertificate(r.cert, ca.cert, T0), `byte ${at}`).toMatchObject({
          ok: false,
          reason: 'bad_signature',
        });
    }
    expect(verifyCertificate(sgw.cert, ca.cert, sgw.cert.notAfter + 1)).toMatchObject({
      ok: false,
      reason: 'expired',
      message: expect.stringMatching(/^expired at 20\d\d-/),
    });
    expect(verifyCertificate(sgw.cert, ca.cert, sgw.cert.notBefore - 1)).toMatchObject({
      ok: false,
      reason: 'not_yet_valid',
    });
    const oldCa = makeCa('Old CA', T0 - 2 * YEAR, T0 - YEAR);
    const late = issueCertificate(
      { subject: sgw.name, publicKey: sgw.publicKey, serial: 9n, notBefore: T0 - 86400, notAfter: T0 + 86400 },
      oldCa.key,
    );
    expect(verifyCertificate(late, oldCa.cert, T0)).toMatchObject({ ok: false, reason: 'ca_not_valid' });
    expect(verifyCertificate(sgw.cert, sgw.cert, T0)).toMatchObject({ ok: false, reason: 'not_a_ca' });
    expect(verifyCertificate({ ...sgw.cert, notAfter: sgw.cert.notAfter + YEAR }, ca.cert, T0)).toMatchObject({
      ok: false,
      reason: 'bad_signature',
    });
  });

  it('issue refuses fields no decoder would accept', () => {
    const base = { subject: sgw.name, publicKey: sgw.publicKey, serial: 1n, notBefore: T0, notAfter: T0 + 1 };
    expect(() => issueCertificate({ ...base, notAfter: T0 - 1 }, ca.key)).toThrow(/notAfter is before notBefore/);
    expect(() => issueCertificate({ ...base, serial: 1n << 64n }, ca.key)).toThrow(/64 bits/);
    expect(() => issueCertificate({ ...base, publicKey: new Uint8Array(31) }, ca.key)).toThrow(/32 bytes/);
    expect(() => issueCertificate({ ...base, publicKey: new Uint8Array(32) }, ca.key)).toThrow(/low-order point/);
    expect(() => issueCertificate({ ...base, publicKey: Uint8Array.of(1, ...new Uint8Array(31)) }, ca.key)).toThrow(
      /low-order point/,
    );
    expect(() =>
      issueCertificate({ ...base, subject: { nsid: NSID_CA_LABEL, label: 'x'.repeat(65) } }, ca.key),
    ).toThrow(/1\.\.64 bytes/);
  });
});
