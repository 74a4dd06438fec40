// Every vector of spec/test-vectors.json (copied here so CI needs nothing outside the repo): primitives through the TS path's crypto (node:crypto), and
// the ESP packet vectors through a real INBOUND on both engines.
process.env.MIPSEC_NATIVE = '1';
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Op, Reason, Verdict, type EspSuite } from '../../src/engine/index.js';
import { aeadOpen, aeadSeal, keyMaterial, macTag } from '../../src/engine/ref/crypto.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { IpProto, buildIpv4, internetChecksum, onesComplementSum, parseIpv4 } from '../../src/wire/ipv4.js';
import { IMPLS, engineWith, hex, runOne } from './fixtures.js';

type Vector = Record<string, string | number | boolean>;
const doc = JSON.parse(readFileSync(new URL('../fixtures/test-vectors.json', import.meta.url), 'utf8')) as {
  groups: Record<string, { vectors: Vector[] }>;
};
const group = (name: string): Vector[] => doc.groups[name].vectors;
const b = (v: Vector, field: string): Buffer => Buffer.from(String(v[field]), 'hex');
const gcmSuite = (key: Buffer): EspSuite => (key.length === 16 ? 'aes128gcm' : 'aes256gcm');

describe('[ts] test vectors: primitives', () => {
  it('covers every group in the file', () => {
    expect(Object.keys(doc.groups).sort()).toEqual([
      'aes_gcm',
      'chacha20_poly1305',
      'esp_aes_gcm_packets',
      'esp_aes_gmac_packets',
      'esp_chacha20_poly1305_packets',
      'hmac_md5',
      'hmac_sha256',
      'hmac_sha256_128',
      'internet_checksum',
      'md5',
    ]);
  });

  it.each(group('hmac_sha256').map((v) => [v.id, v] as const))('HMAC-SHA-256 %s', (_id, v) => {
    const mac = createHmac('sha256', b(v, 'key_hex')).update(b(v, 'data_hex')).digest();
    if (v.hmac_sha256_truncated_128_hex) expect(hex(mac.subarray(0, 16))).toBe(v.hmac_sha256_truncated_128_hex);
    else expect(hex(mac)).toBe(v.hmac_sha256_hex);
  });

  it.each(group('hmac_sha256_128').map((v) => [v.id, v] as const))(
    'HMAC-SHA-256-128 %s through the AH MAC',
    (_id, v) => {
      expect(hex(createHmac('sha256', b(v, 'key_hex')).update(b(v, 'data_hex')).digest())).toBe(v.hmac_sha256_hex);
      const tag = macTag('hmac-sha256-128', keyMaterial(b(v, 'key_hex'), false), b(v, 'data_hex'), new Uint8Array(8));
      expect(hex(tag)).toBe(v.icv_128_hex);
    },
  );

  it.each(group('hmac_md5').map((v) => [v.id, v] as const))('HMAC-MD5 %s', (_id, v) => {
    expect(hex(createHmac('md5', b(v, 'key_hex')).update(b(v, 'data_hex')).digest())).toBe(v.hmac_md5_hex);
  });

  it.each(group('md5').map((v) => [v.id, v] as const))('MD5 %s', (_id, v) => {
    expect(hex(createHash('md5').update(b(v, 'message_hex')).digest())).toBe(v.md5_hex);
  });

  it.each(group('aes_gcm').map((v) => [v.id, v] as const))(
    'AES-GCM %s through the ESP AEAD (salt ‖ IV = the 12-byte IV)',
    (_id, v) => {
      const key = b(v, 'key_hex');
      const iv12 = b(v, 'iv_hex');
      const k = keyMaterial(Buffer.concat([key, iv12.subarray(0, 4)]), true);
      const sealed = aeadSeal(gcmSuite(key), k, iv12.subarray(4), b(v, 'aad_hex'), b(v, 'plaintext_hex'));
      expect(hex(sealed.ciphertext)).toBe(v.ciphertext_hex);
      expect(hex(sealed.tag)).toBe(v.tag_hex);
      const opened = aeadOpen(
        gcmSuite(key),
        k,
        iv12.subarray(4),
        b(v, 'aad_hex'),
        b(v, 'ciphertext_hex'),
        b(v, 'tag_hex'),
      );
      expect(opened && hex(opened)).toBe(v.plaintext_hex);
    },
  );

  it.each(group('esp_aes_gcm_packets').map((v) => [v.id, v] as const))(
    'AES-GCM-ESP packet %s: seal and open',
    (_id, v) => {
      const key = b(v, 'aes_key_hex');
      const k = keyMaterial(b(v, 'keymat_hex'), true);
      const sealed = aeadSeal(gcmSuite(key), k, b(v, 'iv_hex'), b(v, 'aad_hex'), b(v, 'plaintext_hex'));
      expect(hex(sealed.ciphertext)).toBe(v.ciphertext_hex);
      expect(hex(sealed.tag)).toBe(v.icv_hex);
      const esp = b(v, 'esp_packet_hex');
      // AAD = SPI ‖ seq (8 bytes), or SPI ‖ 64-bit ESN (12 bytes) whose low half is the packet's seq.
      const aad = b(v, 'aad_hex');
      expect(hex(Buffer.concat([aad.subarray(0, 4), aad.subarray(aad.length - 4)]))).toBe(hex(esp.subarray(0, 8)));
      const opened = aeadOpen(
        gcmSuite(key),
        k,
        esp.subarray(8, 16),
        b(v, 'aad_hex'),
        esp.subarray(16, esp.length - 16),
        esp.subarray(esp.length - 16),
      );
      expect(opened && hex(opened)).toBe(v.plaintext_hex);
    },
  );

  it.each(group('esp_aes_gmac_packets').map((v) => [v.id, v] as const))(
    'AES-GMAC %s through the AH GMAC (empty plaintext, AAD = covered bytes)',
    (_id, v) => {
      const k = keyMaterial(Buffer.concat([b(v, 'aes_key_hex'), b(v, 'salt_hex')]), true);
      expect(hex(macTag('gmac-aes128', k, b(v, 'aad_hex'), b(v, 'iv_hex')))).toBe(v.icv_hex);
      const esp = b(v, 'esp_packet_hex');
      expect(hex(esp.subarray(esp.length - 16))).toBe(v.icv_hex);
      expect(hex(esp.subarray(0, esp.length - 16))).toBe(v.aad_hex);
    },
  );

  it.each(group('chacha20_poly1305').map((v) => [v.id, v] as const))(
    'ChaCha20-Poly1305 %s through the ESP AEAD',
    (_id, v) => {
      const nonce = b(v, 'nonce_hex');
      const k = keyMaterial(Buffer.concat([b(v, 'key_hex'), nonce.subarray(0, 4)]), true);
      const iv = nonce.subarray(4);
      const sealed = aeadSeal('chacha20poly1305', k, iv, b(v, 'aad_hex'), b(v, 'plaintext_hex'));
      expect(hex(sealed.ciphertext)).toBe(v.ciphertext_hex);
      expect(hex(sealed.tag)).toBe(v.tag_hex);
      const opened = aeadOpen('chacha20poly1305', k, iv, b(v, 'aad_hex'), b(v, 'ciphertext_hex'), b(v, 'tag_hex'));
      expect(opened && hex(opened)).toBe(v.plaintext_hex);
    },
  );

  it.each(group('esp_chacha20_poly1305_packets').map((v) => [v.id, v] as const))(
    'ChaCha20-Poly1305-ESP %s: seal reproduces the packet',
    (_id, v) => {
      const k = keyMaterial(b(v, 'keymat_hex'), true);
      const sealed = aeadSeal('chacha20poly1305', k, b(v, 'iv_hex'), b(v, 'aad_hex'), b(v, 'plaintext_hex'));
      expect(hex(sealed.ciphertext)).toBe(v.ciphertext_hex);
      expect(hex(sealed.tag)).toBe(v.icv_hex);
      const full = Buffer.concat([
        b(v, 'outer_ipv4_header_hex'),
        b(v, 'spi_hex'),
        b(v, 'seq_hex'),
        b(v, 'iv_hex'),
        sealed.ciphertext,
        sealed.tag,
      ]);
      expect(hex(full)).toBe(v.full_packet_hex);
    },
  );

  it.each(group('internet_checksum').map((v) => [v.id, v] as const))('Internet checksum %s', (_id, v) => {
    if (v.data_hex) {
      const data = b(v, 'data_hex');
      expect(onesComplementSum(data, 0, data.length).toString(16).padStart(4, '0')).toBe(v.ones_complement_sum_hex);
      expect(internetChecksum(data, 0, data.length).toString(16).padStart(4, '0')).toBe(v.checksum_hex);
      return;
    }
    const header = b(v, 'header_hex');
    const at = Number(v.checksum_field_offset);
    expect(onesComplementSum(header, 0, header.length)).toBe(0xffff);
    expect(
      parseIpv4(header, 0, header.length, { allowFragments: true }).ok || header.readUInt16BE(2) > header.length,
    ).toBe(true);
    const zeroed = Buffer.from(header);
    zeroed.writeUInt16BE(0, at);
    expect(internetChecksum(zeroed, 0, zeroed.length).toString(16).padStart(4, '0')).toBe(v.checksum_hex);
  });
});

describe.each(IMPLS)('[%s] test vectors through INBOUND', (impl) => {
  it('RFC 7634 App. A: the published ESP packet is delivered by an SPI-mode ChaCha20-Poly1305 SA', () => {
    const v = group('esp_chacha20_poly1305_packets')[0];
    const engine = engineWith(impl, [
      {
        id: 1,
        direction: 'in',
        role: 'end',
        mode: 'spi',
        src: '203.0.113.153',
        dst: '203.0.113.5',
        esp: { suite: 'chacha20poly1305', key: b(v, 'keymat_hex'), spi: 0x01020304 },
      },
    ]);
    const r = runOne(engine, Op.INBOUND, b(v, 'full_packet_hex'));
    expect({ verdict: r.verdict, reason: r.reason, sa: r.sa }).toEqual({
      verdict: Verdict.DELIVER,
      reason: Reason.none,
      sa: 1,
    });
    expect(hex(r.packet)).toBe(v.inner_ipv4_packet_hex);
    // The same packet again is a replay.
    expect(runOne(engine, Op.INBOUND, b(v, 'full_packet_hex')).reason).toBe(Reason.replay);
    engine.close();
  });

  it.each(
    group('esp_aes_gcm_packets')
      .filter((v) => !v.esn)
      .map((v) => [v.id, v] as const),
  )(
    'AES-GCM-ESP %s authenticates through INBOUND (its next header is not 4: bad_next_header after the tag passed)',
    (_id, v) => {
      const key = b(v, 'aes_key_hex');
      const spi = b(v, 'spi_hex').readUInt32BE(0);
      const engine = engineWith(impl, [
        {
          id: 2,
          direction: 'in',
          role: 'end',
          mode: 'spi',
          src: '192.0.2.1',
          dst: '192.0.2.2',
          esp: { suite: gcmSuite(key), key: b(v, 'keymat_hex'), spi },
        },
      ]);
      const packet = buildIpv4(
        { src: ipToU32('192.0.2.1'), dst: ipToU32('192.0.2.2'), protocol: IpProto.ESP },
        b(v, 'esp_packet_hex'),
      );
      const r = runOne(engine, Op.INBOUND, packet);
      expect({ verdict: r.verdict, reason: r.reason, sa: r.sa }).toEqual({
        verdict: Verdict.DROP,
        reason: Reason.bad_next_header,
        sa: 2,
      });
      const tampered = Uint8Array.from(packet);
      tampered[tampered.length - 1] ^= 1;
      const engine2 = engineWith(impl, [
        {
          id: 2,
          direction: 'in',
          role: 'end',
          mode: 'spi',
          src: '192.0.2.1',
          dst: '192.0.2.2',
          esp: { suite: gcmSuite(key), key: b(v, 'keymat_hex'), spi },
        },
      ]);
      expect(runOne(engine2, Op.INBOUND, tampered).reason).toBe(Reason.auth);
      engine.close();
      engine2.close();
    },
  );
});
