// Every vector of spec/test-vectors.json (a copy in test/fixtures, so the tests need nothing outside the repo) the native primitives cover, run through the data path's own code.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Batch, Op, Reason, Verdict } from '../../src/engine/index.js';
import { binding, fromHex, nativeEngine, toHex } from './addon.js';

const vectors = JSON.parse(readFileSync(new URL('../fixtures/test-vectors.json', import.meta.url), 'utf8')).groups;
const crypto = binding().crypto;

describe('HMAC-SHA-256 (RFC 4231) and HMAC-SHA-256-128 (RFC 4868)', () => {
  for (const v of vectors.hmac_sha256.vectors) {
    it(v.id, () => {
      const mac: Uint8Array = crypto.hmacSha256(fromHex(v.key_hex), fromHex(v.data_hex));
      if (v.hmac_sha256_hex) expect(toHex(mac)).toBe(v.hmac_sha256_hex);
      else expect(toHex(mac.subarray(0, 16))).toBe(v.hmac_sha256_truncated_128_hex);
    });
  }
  for (const v of vectors.hmac_sha256_128.vectors) {
    it(`${v.id} (truncated to 128 bits)`, () => {
      const mac: Uint8Array = crypto.hmacSha256(fromHex(v.key_hex), fromHex(v.data_hex));
      expect(toHex(mac)).toBe(v.hmac_sha256_hex);
      expect(toHex(mac.subarray(0, 16))).toBe(v.icv_128_hex);
    });
  }
});

describe('AES-GCM (GCM spec App. B)', () => {
  for (const v of vectors.aes_gcm.vectors) {
    it(v.id, () => {
      const suite = v.key_hex.length === 64 ? 'aes256gcm' : 'aes128gcm';
      const [key, iv, aad, pt] = [v.key_hex, v.iv_hex, v.aad_hex, v.plaintext_hex].map(fromHex);
      const sealed: Uint8Array = crypto.aeadSeal(suite, key, iv, aad, pt);
      expect(toHex(sealed)).toBe(v.ciphertext_hex + v.tag_hex);
      expect(toHex(crypto.aeadOpen(suite, key, iv, aad, sealed))).toBe(v.plaintext_hex);
      sealed[sealed.length - 1] ^= 1;
      expect(crypto.aeadOpen(suite, key, iv, aad, sealed)).toBeNull();
    });
  }
  it('GCM-TC1 as GMAC (empty plaintext): the tag alone', () => {
    const v = vectors.aes_gcm.vectors[0];
    expect(toHex(crypto.gmac(fromHex(v.key_hex), fromHex(v.iv_hex), new Uint8Array(0)))).toBe(v.tag_hex);
  });
});

describe('ESP AES-GCM packets (draft-mcgrew-gcm-test-01)', () => {
  for (const v of vectors.esp_aes_gcm_packets.vectors) {
    it(v.id, () => {
      const suite = v.aes_key_hex.length === 64 ? 'aes256gcm' : 'aes128gcm';
      const nonce = fromHex(v.salt_hex + v.iv_hex);
      expect(toHex(nonce)).toBe(v.nonce_hex);
      const aad = fromHex(v.aad_hex);
      const sealed: Uint8Array = crypto.aeadSeal(suite, fromHex(v.aes_key_hex), nonce, aad, fromHex(v.plaintext_hex));
      expect(toHex(sealed)).toBe(v.ciphertext_hex + v.icv_hex);
      expect(v.esp_packet_hex).toBe(v.spi_hex + v.seq_hex.slice(-8) + v.iv_hex + v.ciphertext_hex + v.icv_hex);
      expect(toHex(crypto.aeadOpen(suite, fromHex(v.aes_key_hex), nonce, aad, sealed))).toBe(v.plaintext_hex);
    });
  }
  for (const v of vectors.esp_aes_gmac_packets.vectors) {
    it(`${v.id} (RFC 4543 GMAC over SPI ‖ seq ‖ IV ‖ payload)`, () => {
      const tag: Uint8Array = crypto.gmac(fromHex(v.aes_key_hex), fromHex(v.nonce_hex), fromHex(v.aad_hex));
      expect(toHex(tag)).toBe(v.icv_hex);
      expect(v.esp_packet_hex.endsWith(v.icv_hex)).toBe(true);
    });
  }
});

describe('ChaCha20-Poly1305 (RFC 8439, RFC 7634)', () => {
  for (const v of vectors.chacha20_poly1305.vectors) {
    it(v.id, () => {
      const [key, nonce, aad] = [v.key_hex, v.nonce_hex, v.aad_hex].map(fromHex);
      const sealed: Uint8Array = crypto.aeadSeal('chacha20poly1305', key, nonce, aad, fromHex(v.plaintext_hex));
      expect(toHex(sealed)).toBe(v.ciphertext_hex + v.tag_hex);
      expect(toHex(crypto.aeadOpen('chacha20poly1305', key, nonce, aad, sealed))).toBe(v.plaintext_hex);
    });
  }

  const pkt = vectors.esp_chacha20_poly1305_packets.vectors[0];
  it(`${pkt.id}: primitive seal gives the published ciphertext and ICV`, () => {
    const sealed: Uint8Array = crypto.aeadSeal(
      'chacha20poly1305',
      fromHex(pkt.key_hex),
      fromHex(pkt.nonce_hex),
      fromHex(pkt.aad_hex),
      fromHex(pkt.plaintext_hex),
    );
    expect(toHex(sealed)).toBe(pkt.ciphertext_hex + pkt.icv_hex);
  });

  it(`${pkt.id}: the full packet through INBOUND with an SPI-mode SA delivers the inner ICMP echo`, () => {
    const spi = parseInt(pkt.spi_hex, 16);
    const engine = nativeEngine([
      {
        id: 1,
        direction: 'in',
        role: 'end',
        mode: 'spi',
        src: '203.0.113.153',
        dst: '203.0.113.5',
        esp: { suite: 'chacha20poly1305', key: fromHex(pkt.keymat_hex), spi },
      },
    ]);
    const batch = new Batch({ capacity: 2 });
    batch.push(Op.INBOUND, fromHex(pkt.full_packet_hex));
    batch.push(Op.INBOUND, fromHex(pkt.full_packet_hex));
    engine.process(batch);
    const first = batch.result(0);
    expect([first.verdict, first.reason, first.sa]).toEqual([Verdict.DELIVER, Reason.none, 1]);
    expect(toHex(first.packet)).toBe(pkt.inner_ipv4_packet_hex);
    const again = batch.result(1);
    expect([again.verdict, again.reason]).toEqual([Verdict.DROP, Reason.replay]);
    expect(engine.saStats(1)?.espSeq).toBe(parseInt(pkt.seq_hex, 16));
    engine.close();
  });
});

describe('Internet checksum (RFC 1071, RFC 1624)', () => {
  for (const v of vectors.internet_checksum.vectors) {
    it(v.id, () => {
      const data = fromHex(v.data_hex ?? v.header_hex);
      if (v.checksum_field_offset === undefined) {
        expect(crypto.ipChecksum(data)).toBe(parseInt(v.checksum_hex, 16));
        expect(0xffff - crypto.ipChecksum(data)).toBe(parseInt(v.ones_complement_sum_hex, 16));
        return;
      }
      expect(crypto.ipChecksum(data)).toBe(0); // a valid header sums to 0xffff
      const at = v.checksum_field_offset;
      data[at] = data[at + 1] = 0;
      expect(crypto.ipChecksum(data)).toBe(parseInt(v.checksum_hex, 16));
    });
  }
  it('incremental update after TTL−1 equals a full recomputation', () => {
    const header = fromHex(vectors.internet_checksum.vectors[1].header_hex);
    const oldWord = (header[8] << 8) | header[9];
    const oldSum = (header[10] << 8) | header[11];
    header[8] -= 1;
    const patched = crypto.ipChecksumUpdate(oldSum, oldWord, (header[8] << 8) | header[9]);
    header[10] = header[11] = 0;
    expect(patched).toBe(crypto.ipChecksum(header));
  });
});

describe('AES-256 key wrap (RFC 3394)', () => {
  // RFC 3394 §4.6: 256-bit key data with a 256-bit KEK.
  const kek = fromHex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
  const keyData = fromHex('00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f');
  const wrapped = '28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21';
  it('RFC 3394 §4.6 wraps and unwraps', () => {
    expect(toHex(crypto.keyWrap(kek, keyData))).toBe(wrapped);
    expect(toHex(crypto.keyUnwrap(kek, fromHex(wrapped)))).toBe(toHex(keyData));
  });
  it('a flipped bit fails the integrity check', () => {
    const bad = fromHex(wrapped);
    bad[5] ^= 0x10;
    expect(crypto.keyUnwrap(kek, bad)).toBeNull();
  });
});
