// AH, ESP framing and IP-in-IP codecs: round trips, truncations, checks.
import { describe, expect, it } from 'vitest';
import { ipToU32 } from '../../src/wire/addr.js';
import { AH_BYTES, parseAh, writeAhHeader } from '../../src/wire/ah.js';
import {
  ESP_MIN_BYTES,
  checkEspTrailer,
  espPadLength,
  parseEsp,
  writeEspHeader,
  writeEspTrailer,
} from '../../src/wire/esp.js';
import { isIpipLoop, parseIpip, writeIpipHeader } from '../../src/wire/ipip.js';
import { IPV4_FLAG_DF, IPV4_FLAG_MF, IpProto, buildIpv4, parseIpv4 } from '../../src/wire/ipv4.js';

describe('AH (RFC 4302)', () => {
  const ah = new Uint8Array(36);
  writeAhHeader(ah, 0, { nextHeader: IpProto.ESP, length: AH_BYTES['gmac-aes128'], spi: 1, seq: 0xdeadbeef });

  it('round-trips and sizes per algorithm (payload length = words − 2)', () => {
    expect(AH_BYTES).toEqual({ 'hmac-sha256-128': 28, 'gmac-aes128': 36 });
    expect(ah[1]).toBe(7);
    expect(parseAh(ah, 0, 36, 36)).toEqual({
      ok: true,
      header: { nextHeader: 50, length: 36, spi: 1, seq: 0xdeadbeef },
    });
    const hmac = new Uint8Array(28);
    writeAhHeader(hmac, 0, { nextHeader: 4, length: 28, spi: 300, seq: 1 });
    expect(hmac[1]).toBe(5);
    expect(() => writeAhHeader(hmac, 0, { nextHeader: 4, length: 30, spi: 1, seq: 1 })).toThrow(/multiple of 4/);
  });

  it('every truncation length, wrong length for the algorithm, reserved bits', () => {
    for (let l = 0; l < 36; l++)
      expect(parseAh(ah, 0, l, 36), `length ${l}`).toEqual({ ok: false, reason: 'truncated' });
    expect(parseAh(ah, 0, 36, 28)).toEqual({ ok: false, reason: 'bad_ah' });
    const huge = Uint8Array.from(ah);
    huge[1] = 255;
    expect(parseAh(huge, 0, 36, 36)).toEqual({ ok: false, reason: 'bad_ah' }); // wrong for the SA even though it would run past
    expect(parseAh(huge, 0, 36)).toEqual({ ok: false, reason: 'truncated' });
    const tiny = Uint8Array.from(ah);
    tiny[1] = 0;
    expect(parseAh(tiny, 0, 36)).toEqual({ ok: false, reason: 'bad_ah' });
    for (const at of [2, 3]) {
      const r = Uint8Array.from(ah);
      r[at] = 0x80;
      expect(parseAh(r, 0, 36, 36)).toEqual({ ok: false, reason: 'bad_ah' });
    }
  });
});

describe('ESP framing (RFC 4303)', () => {
  it('pads to the least length with payload + 2 + pad ≡ 0 mod 4, bytes 1, 2, 3 …', () => {
    expect([0, 1, 2, 3, 4, 5].map(espPadLength)).toEqual([2, 1, 0, 3, 2, 1]);
    const buf = new Uint8Array(8);
    expect(writeEspTrailer(buf, 1, 3, 4)).toBe(5);
    expect(Array.from(buf)).toEqual([0, 1, 2, 3, 3, 4, 0, 0]);
    expect(checkEspTrailer(buf, 0, 6)).toEqual({ ok: true, payloadEnd: 1, nextHeader: 4 });
  });

  it('rejects wrong padding bytes and pad lengths beyond the plaintext', () => {
    expect(checkEspTrailer(Uint8Array.from([9, 1, 3, 2, 4]), 0, 5)).toEqual({ ok: false, reason: 'bad_esp' });
    expect(checkEspTrailer(Uint8Array.from([1, 2, 4]), 0, 3)).toEqual({ ok: false, reason: 'bad_esp' });
    expect(checkEspTrailer(Uint8Array.from([4]), 0, 1)).toEqual({ ok: false, reason: 'bad_esp' });
    expect(checkEspTrailer(Uint8Array.from([0, 59]), 0, 2)).toEqual({ ok: true, payloadEnd: 0, nextHeader: 59 });
  });

  it('frames SPI, seq, IV, ciphertext and ICV; every truncation length', () => {
    const esp = new Uint8Array(ESP_MIN_BYTES + 6);
    writeEspHeader(esp, 0, 0x01020304, 5);
    expect(parseEsp(esp, 0)).toEqual({
      ok: true,
      frame: { spi: 0x01020304, seq: 5, ivOffset: 8, ciphertextOffset: 16, ciphertextEnd: esp.length - 16 },
    });
    for (let l = 0; l < ESP_MIN_BYTES; l++) {
      expect(parseEsp(esp, 0, l), `length ${l}`).toEqual({ ok: false, reason: l < 8 ? 'truncated' : 'bad_esp' });
    }
  });
});

describe('IP-in-IP (RFC 2003)', () => {
  const inner = buildIpv4(
    {
      src: ipToU32('10.0.0.20'),
      dst: ipToU32('10.0.0.100'),
      tos: 0x10,
      identification: 77,
      flagsFragment: IPV4_FLAG_DF,
      ttl: 9,
      protocol: IpProto.UDP,
    },
    new Uint8Array(12),
  );
  const ha = ipToU32('10.0.0.2');
  const coa = ipToU32('10.1.0.100');

  function tunnel(innerPacket: Uint8Array): Uint8Array {
    const h = parseIpv4(innerPacket, 0, innerPacket.length, { allowFragments: true });
    if (!h.ok) throw new Error(h.reason);
    const out = new Uint8Array(20 + innerPacket.length);
    writeIpipHeader(out, 0, h.header, ha, coa);
    out.set(innerPacket, 20);
    return out;
  }

  it('outer header copies TOS, DF and identification; TTL 64; protocol 4', () => {
    const p = tunnel(inner);
    const outer = parseIpv4(p, 0);
    expect(outer.ok && outer.header).toMatchObject({
      tos: 0x10,
      identification: 77,
      flagsFragment: IPV4_FLAG_DF,
      ttl: 64,
      protocol: 4,
      src: ha,
      dst: coa,
      totalLength: 52,
    });
    const r = parseIpip(p, 0);
    expect(r.ok && r.innerOffset).toBe(20);
    expect(r.ok && r.inner.src).toBe(ipToU32('10.0.0.20'));
  });

  it('loop, TTL 0, wrong protocol, every truncation', () => {
    const h = parseIpv4(inner, 0);
    expect(h.ok && isIpipLoop(h.header, ipToU32('10.0.0.20'))).toBe(true);
    expect(h.ok && isIpipLoop(h.header, coa)).toBe(false);
    const dead = buildIpv4(
      { src: ipToU32('10.0.0.20'), dst: ipToU32('10.0.0.100'), ttl: 0, protocol: IpProto.UDP },
      new Uint8Array(12),
    );
    expect(parseIpip(tunnel(dead), 0)).toEqual({ ok: false, reason: 'ttl_expired' });
    expect(parseIpip(inner, 0)).toEqual({ ok: false, reason: 'bad_next_header' });
    const p = tunnel(inner);
    for (let l = 0; l < p.length; l++) expect(parseIpip(p, 0, l).ok, `length ${l}`).toBe(false);
    // An inner fragment is carried whole and delivered as it is.
    const frag = buildIpv4({ src: 1, dst: 2, flagsFragment: IPV4_FLAG_MF, protocol: IpProto.UDP }, new Uint8Array(8));
    expect(parseIpip(tunnel(frag), 0).ok).toBe(true);
  });
});
