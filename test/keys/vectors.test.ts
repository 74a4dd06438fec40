// Frozen known-answer vectors (test/fixtures/keys/skip-kat.json): recomputed with our code
// (libsodium) and, step by step, with node:crypto's own X25519, BLAKE2b-512, AES key wrap and Ed25519.
import { readFileSync } from 'node:fs';
import {
  createCipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  sign as edSign,
  verify as edVerify,
} from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sodium } from '../../src/keys/sodium.js';
import {
  canonicalPair,
  deriveKij,
  deriveKijn,
  skipCounter,
  trafficKey,
  unwrapKp,
  wrapKp,
} from '../../src/keys/derive.js';
import {
  decodeCertificate,
  issueCertificate,
  verifyCertificate,
  type Certificate,
} from '../../src/keys/certificate.js';
import { caKeyFromSeed } from '../../src/keys/keyfile.js';
import { CertCache } from '../../src/keys/cache.js';
import { SkipKeying } from '../../src/keys/keying.js';
import { parseName } from '../../src/keys/names.js';
import { KEY_BYTES, SkipAlg, type EspSuite, type MacAlg } from '../../src/engine/types.js';
import { decodeSkipHeader } from '../../src/wire/skip.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { hex, nodeName, unhex } from './helpers.js';

const kat = JSON.parse(readFileSync(new URL('../fixtures/keys/skip-kat.json', import.meta.url), 'utf8'));
const input = kat.inputs;
const time = Date.parse(input.time) / 1000;

// DER wrappers (RFC 8410) to hand raw X25519/Ed25519 keys to node:crypto.
const x25519Private = (raw: string) =>
  createPrivateKey({ key: Buffer.from(`302e020100300506032b656e04220420${raw}`, 'hex'), format: 'der', type: 'pkcs8' });
const x25519Public = (raw: string) =>
  createPublicKey({ key: Buffer.from(`302a300506032b656e032100${raw}`, 'hex'), format: 'der', type: 'spki' });
const ed25519Public = (raw: string) =>
  createPublicKey({ key: Buffer.from(`302a300506032b6570032100${raw}`, 'hex'), format: 'der', type: 'spki' });
const ed25519Private = (seed: string) =>
  createPrivateKey({
    key: Buffer.from(`302e020100300506032b657004220420${seed}`, 'hex'),
    format: 'der',
    type: 'pkcs8',
  });
const nodeBlake2bLow = (length: number, ...parts: (string | Buffer)[]) =>
  createHash('blake2b512')
    .update(Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'hex') : p))))
    .digest()
    .subarray(64 - length)
    .toString('hex');
const certOf = (hexText: string): Certificate => {
  const decoded = decodeCertificate(unhex(hexText));
  if (!decoded.ok) throw new Error(decoded.error);
  return decoded.cert;
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

describe('SKIP keying known answers', () => {
  it('public keys: libsodium and node:crypto agree', () => {
    expect(hex(sodium.crypto_scalarmult_base(unhex(input.sgwSecret)))).toBe(kat.sgwPublic);
    expect(hex(sodium.crypto_scalarmult_base(unhex(input.smnSecret)))).toBe(kat.smnPublic);
    const jwk = createPublicKey(x25519Private(input.sgwSecret)).export({ format: 'jwk' });
    expect(Buffer.from(jwk.x!, 'base64url').toString('hex')).toBe(kat.sgwPublic);
    expect(hex(caKeyFromSeed(unhex(input.caSeed)).publicKey)).toBe(kat.caPublic);
  });

  it('X25519 shared secret: both directions, and node:crypto diffieHellman', () => {
    const nodeShared = diffieHellman({
      privateKey: x25519Private(input.smnSecret),
      publicKey: x25519Public(kat.sgwPublic),
    }).toString('hex');
    const nodeSharedOther = diffieHellman({
      privateKey: x25519Private(input.sgwSecret),
      publicKey: x25519Public(kat.smnPublic),
    }).toString('hex');
    expect(nodeShared).toBe(kat.x25519Shared);
    expect(nodeSharedOther).toBe(kat.x25519Shared);
    expect(hex(sodium.crypto_scalarmult(unhex(input.smnSecret), unhex(kat.sgwPublic)))).toBe(kat.x25519Shared);
  });

  it('Kij = low 32 of BLAKE2b-512(shared | lower public | higher public), same from both ends', () => {
    const [lower, higher] = [kat.sgwPublic, kat.smnPublic].sort();
    expect(hex(canonicalPair(unhex(kat.smnPublic), unhex(kat.sgwPublic))[0])).toBe(lower);
    expect(nodeBlake2bLow(32, kat.x25519Shared, lower, higher)).toBe(kat.kij);
    expect(hex(deriveKij(unhex(input.smnSecret), unhex(kat.smnPublic), unhex(kat.sgwPublic))!)).toBe(kat.kij);
    expect(hex(deriveKij(unhex(input.sgwSecret), unhex(kat.sgwPublic), unhex(kat.smnPublic))!)).toBe(kat.kij);
  });

  it('n and Kijn = low 32 of BLAKE2b-512(Kij | n | 0x00)', () => {
    expect(skipCounter(time)).toBe(kat.n);
    expect(kat.n).toBe(Math.floor((time - 788918400) / 3600));
    expect(nodeBlake2bLow(32, kat.kij, u32(kat.n), '00')).toBe(kat.kijn);
    expect(hex(deriveKijn(unhex(kat.kij), kat.n))).toBe(kat.kijn);
  });

  it('wrapped Kp = AES-256 key wrap (RFC 3394) of Kp under Kijn', () => {
    const cipher = createCipheriv(
      'id-aes256-wrap',
      Buffer.from(kat.kijn, 'hex'),
      Buffer.from('a6a6a6a6a6a6a6a6', 'hex'),
    );
    expect(Buffer.concat([cipher.update(Buffer.from(input.kp, 'hex')), cipher.final()]).toString('hex')).toBe(
      kat.wrappedKp,
    );
    expect(hex(wrapKp(unhex(kat.kijn), unhex(input.kp)))).toBe(kat.wrappedKp);
    expect(hex(unwrapKp(unhex(kat.kijn), unhex(kat.wrappedKp))!)).toBe(input.kp);
  });

  it('E_kp and A_kp for every algorithm number', () => {
    for (const [suite, id] of Object.entries(SkipAlg.crypt)) {
      const expected = kat[`E_kp ${suite}`];
      expect(expected).toHaveLength(2 * KEY_BYTES[suite as EspSuite]);
      expect(nodeBlake2bLow(KEY_BYTES[suite as EspSuite], input.kp, Buffer.of(id), '00')).toBe(expected);
      expect(hex(trafficKey(unhex(input.kp), id, 'crypt', KEY_BYTES[suite as EspSuite]))).toBe(expected);
    }
    for (const [mac, id] of Object.entries(SkipAlg.mac)) {
      const expected = kat[`A_kp ${mac}`];
      expect(nodeBlake2bLow(KEY_BYTES[mac as MacAlg], input.kp, Buffer.of(id), '01')).toBe(expected);
      expect(hex(trafficKey(unhex(input.kp), id, 'mac', KEY_BYTES[mac as MacAlg]))).toBe(expected);
    }
  });

  it('certificates: same bytes when re-issued, signatures verify with node:crypto Ed25519', () => {
    const ca = caKeyFromSeed(unhex(input.caSeed));
    const notBefore = Date.parse(input.notBefore) / 1000;
    const notAfter = Date.parse(input.notAfter) / 1000;
    const sgw = issueCertificate(
      {
        subject: { nsid: 0, address: ipToU32('198.18.0.1') },
        publicKey: unhex(kat.sgwPublic),
        serial: 2n,
        notBefore,
        notAfter,
      },
      ca,
    );
    expect(hex(sgw.encoded)).toBe(kat.sgwCert);
    for (const field of ['caCert', 'sgwCert', 'smnCert']) {
      const bytes = Buffer.from(kat[field], 'hex');
      expect(
        edVerify(
          null,
          bytes.subarray(0, bytes.length - 64),
          ed25519Public(kat.caPublic),
          bytes.subarray(bytes.length - 64),
        ),
      ).toBe(true);
      expect(verifyCertificate(certOf(kat[field]), certOf(kat.caCert), time)).toEqual({ ok: true });
    }
    // node:crypto signs the same bytes to the same (deterministic) Ed25519 signature.
    const smn = Buffer.from(kat.smnCert, 'hex');
    const nodeSig = edSign(null, smn.subarray(0, smn.length - 64), ed25519Private(input.caSeed));
    expect(nodeSig.toString('hex')).toBe(smn.subarray(smn.length - 64).toString('hex'));
  });

  it('SkipKeying reproduces the SA keys and SKIP header bytes, and the SGW derives them back', () => {
    const caCert = certOf(kat.caCert);
    const sgwCert = certOf(kat.sgwCert);
    const smnCert = certOf(kat.smnCert);
    const smnCache = new CertCache(caCert);
    expect(smnCache.add(sgwCert, time).ok).toBe(true);
    const sgwCache = new CertCache(caCert);
    expect(sgwCache.add(smnCert, time).ok).toBe(true);
    const smn = new SkipKeying({
      identity: {
        name: nodeName(smnCert),
        secretKey: unhex(input.smnSecret),
        publicKey: unhex(kat.smnPublic),
        cert: smnCert,
      },
      certs: smnCache,
      now: () => time,
      random: () => unhex(input.kp),
    });
    const sgw = new SkipKeying({
      identity: {
        name: nodeName(sgwCert),
        secretKey: unhex(input.sgwSecret),
        publicKey: unhex(kat.sgwPublic),
        cert: sgwCert,
      },
      certs: sgwCache,
      now: () => time,
    });
    const parsedPeer = parseName(input.sgwName);
    if (!parsedPeer.ok) throw new Error(parsedPeer.error);
    const peer = parsedPeer.name;
    const end = smn.outboundSa({
      peer,
      src: input.outerSrc,
      dst: input.outerDst,
      role: 'end',
      esp: 'aes256gcm',
      ah: 'hmac-sha256-128',
    });
    if (!end.ok || !end.created) throw new Error('no end SA');
    expect(hex(end.sa.skipHeader!)).toBe(kat.endSa.skipHeader);
    expect(hex(end.sa.esp!.key)).toBe(kat.endSa.espKey);
    expect(hex(end.sa.ah!.key)).toBe(kat.endSa.ahKey);
    const header = decodeSkipHeader(unhex(kat.endSa.skipHeader), 0);
    expect(header.ok && hex(header.header.wrappedKp)).toBe(kat.wrappedKp);
    const next = smn.outboundSa({ peer, src: input.outerSrc, dst: input.outerDst, role: 'nexthop', ah: 'gmac-aes128' });
    if (!next.ok || !next.created) throw new Error('no nexthop SA');
    expect(hex(next.sa.skipHeader!)).toBe(kat.nexthopSa.skipHeader);
    expect(hex(next.sa.ah!.key)).toBe(kat.nexthopSa.ahKey);
    const inbound = sgw.inboundSa({ packet: unhex(kat.endSa.skipHeader), src: input.outerSrc, dst: input.outerDst });
    if (!inbound.ok || !inbound.created) throw new Error(`no inbound SA: ${JSON.stringify(inbound)}`);
    expect(hex(inbound.sa.esp!.key)).toBe(kat.endSa.espKey);
    expect(hex(inbound.sa.ah!.key)).toBe(kat.endSa.ahKey);
  });
});
