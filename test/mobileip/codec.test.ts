import { describe, expect, it } from 'vitest';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildIpv4, IpProto } from '../../src/wire/ipv4.js';
import {
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
  ExtType,
  hmacMd5,
  idHigh,
  idLow,
  LIFETIME_INFINITE,
  makeId,
  ntpFromUnixMs,
  ReplyCode,
  RequestFlag,
  verifyMnHaAuth,
  type RegistrationRequest,
} from '../../src/wire/mobileip.js';
import { buildUdpDatagram, decodeUdp, encodeUdp, parseUdpDatagram, UDP_HEADER_BYTES } from '../../src/wire/udp.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const fromHex = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));

const key = { spi: 0x1000, key: fromHex('00112233445566778899aabbccddeeff') };
const request: RegistrationRequest = {
  flags: RequestFlag.D | RequestFlag.T,
  lifetime: 600,
  homeAddress: ipToU32('10.0.0.100'),
  homeAgent: ipToU32('10.0.0.2'),
  careOf: ipToU32('10.1.0.100'),
  identification: makeId(0xe8f00000, 0x12345678),
};

describe('HMAC-MD5 (RFC 2202 §2, as in spec/test-vectors.json)', () => {
  it.each([
    ['test case 1', '0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b', 'Hi There', '9294727a3638bb1c13f48ef8158bfc9d'],
    ['test case 2', '4a656665', 'what do ya want for nothing?', '750c783e6ab0b503eaa86e310a5db738'],
  ])('%s', (_name, keyHex, data, mac) => {
    expect(hex(hmacMd5(fromHex(keyHex), new TextEncoder().encode(data)))).toBe(mac);
  });
});

describe('Registration Request', () => {
  it('has the RFC 5944 §3.3 layout and round-trips', () => {
    const bytes = encodeRequest(request, key);
    expect(bytes.length).toBe(24 + 22);
    expect(hex(bytes.subarray(0, 24))).toBe(
      '01220258' + '0a000064' + '0a000002' + '0a010064' + 'e8f00000' + '12345678',
    );
    // Extension: type 32, length 20, SPI, 16-byte HMAC-MD5 over bytes [0, 30).
    expect(hex(bytes.subarray(24, 30))).toBe('201400001000');
    expect(hex(bytes.subarray(30))).toBe(hex(hmacMd5(key.key, bytes.subarray(0, 30))));
    const parsed = decodeRequest(bytes);
    if (!parsed.ok) throw new Error(parsed.detail);
    expect(parsed.message).toEqual({ ...request, extensions: [] });
    expect(parsed.mnHaAuth?.spi).toBe(0x1000);
    expect(verifyMnHaAuth(bytes, parsed.mnHaAuth, key)).toEqual({ ok: true });
  });

  it('covers preceding extensions with the authenticator and skips unknown skippable ones', () => {
    const withExt = {
      ...request,
      extensions: [
        { type: ExtType.PAD, data: new Uint8Array(0) },
        { type: 200, data: fromHex('abcdef') },
      ],
    };
    const bytes = encodeRequest(withExt, key);
    const parsed = decodeRequest(bytes);
    if (!parsed.ok) throw new Error(parsed.detail);
    expect(parsed.message.extensions).toEqual([{ type: 200, data: fromHex('abcdef') }]);
    expect(parsed.mnHaAuth?.offset).toBe(24 + 1 + 5);
    expect(verifyMnHaAuth(bytes, parsed.mnHaAuth, key)).toEqual({ ok: true });
    const tampered = bytes.slice();
    tampered[24 + 1 + 2] ^= 1; // inside the skippable extension's data
    const reparsed = decodeRequest(tampered);
    if (!reparsed.ok) throw new Error(reparsed.detail);
    expect(verifyMnHaAuth(tampered, reparsed.mnHaAuth, key)).toEqual({ ok: false, reason: 'bad_authenticator' });
  });

  it('rejects an unknown non-skippable extension, naming its type', () => {
    const bytes = encodeRequest({ ...request, extensions: [{ type: 99, data: fromHex('00') }] }, key);
    const parsed = decodeRequest(bytes);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.reason).toBe('unknown_extension');
      expect(parsed.detail).toContain('type 99');
    }
  });

  it('detects a tampered bit anywhere in the authenticated bytes, and a wrong key or SPI', () => {
    const bytes = encodeRequest(request, key);
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      const t = bytes.slice();
      t[bit >> 3] ^= 0x80 >> (bit & 7);
      const parsed = decodeRequest(t);
      // Flipping the type or length bytes breaks parsing itself; every other flip fails authentication.
      if (!parsed.ok) continue;
      expect(verifyMnHaAuth(t, parsed.mnHaAuth, key).ok, `bit ${bit}`).toBe(false);
    }
    const parsed = decodeRequest(bytes);
    if (!parsed.ok) throw new Error(parsed.detail);
    expect(verifyMnHaAuth(bytes, parsed.mnHaAuth, { spi: key.spi, key: new Uint8Array(16) })).toEqual({
      ok: false,
      reason: 'bad_authenticator',
    });
    expect(verifyMnHaAuth(bytes, parsed.mnHaAuth, { spi: 7, key: key.key })).toEqual({
      ok: false,
      reason: 'spi_mismatch',
    });
    expect(verifyMnHaAuth(bytes.subarray(0, 24), undefined, key)).toEqual({ ok: false, reason: 'missing_mn_ha_auth' });
  });

  it('rejects every truncation with a reason and never throws', () => {
    const bytes = encodeRequest({ ...request, extensions: [{ type: 130, data: fromHex('0102') }] }, key);
    for (let n = 0; n < bytes.length; n++) {
      const parsed = decodeRequest(bytes.subarray(0, n));
      if (parsed.ok) {
        // Cutting exactly between extensions leaves a well-formed message without its auth extension.
        expect(parsed.mnHaAuth).toBeUndefined();
        expect(n === 24 || n === 24 + 4).toBe(true);
      } else {
        expect(parsed.reason, `length ${n}`).toBe('truncated');
        expect(parsed.detail.length).toBeGreaterThan(0);
      }
    }
  });

  it('rejects a short MN-HA extension, a second one, and a wrong type', () => {
    const bytes = encodeRequest(request, key);
    const short = bytes.slice(0, 24 + 6);
    short[25] = 4;
    expect(decodeRequest(short)).toMatchObject({ ok: false, reason: 'bad_extension_length' });
    const twice = new Uint8Array([...bytes, ...bytes.subarray(24)]);
    expect(decodeRequest(twice)).toMatchObject({ ok: false, reason: 'duplicate_mn_ha_auth' });
    expect(
      decodeRequest(encodeReply({ code: 0, lifetime: 1, homeAddress: 1, homeAgent: 2, identification: 1n }, key)),
    ).toMatchObject({ ok: false, reason: 'unknown_type' });
    expect(decodeRequest(new Uint8Array(0))).toMatchObject({ ok: false, reason: 'truncated' });
  });

  it('refuses out-of-range fields when encoding, naming them', () => {
    expect(() => encodeRequest({ ...request, lifetime: 0x10000 }, key)).toThrow(/lifetime/);
    expect(() => encodeRequest({ ...request, flags: 256 }, key)).toThrow(/flags/);
    expect(() => encodeRequest({ ...request, extensions: [{ type: 32, data: new Uint8Array(20) }] }, key)).toThrow(
      /MN-HA key/,
    );
  });
});

describe('Registration Reply', () => {
  it('has the RFC 5944 §3.4 layout and round-trips', () => {
    const reply = {
      code: ReplyCode.ACCEPTED,
      lifetime: LIFETIME_INFINITE,
      homeAddress: request.homeAddress,
      homeAgent: request.homeAgent,
      identification: request.identification,
    };
    const bytes = encodeReply(reply, key);
    expect(hex(bytes.subarray(0, 20))).toBe('0300ffff' + '0a000064' + '0a000002' + 'e8f0000012345678');
    const parsed = decodeReply(bytes);
    if (!parsed.ok) throw new Error(parsed.detail);
    expect(parsed.message).toEqual({ ...reply, extensions: [] });
    expect(verifyMnHaAuth(bytes, parsed.mnHaAuth, key)).toEqual({ ok: true });
  });

  it('rejects every truncation with a reason', () => {
    const bytes = encodeReply({ code: 133, lifetime: 0, homeAddress: 1, homeAgent: 2, identification: 3n }, key);
    for (let n = 0; n < bytes.length; n++) {
      const parsed = decodeReply(bytes.subarray(0, n));
      if (parsed.ok) expect(n).toBe(20);
      else expect(parsed.reason).toBe('truncated');
    }
    expect(decodeReply(encodeRequest(request, key))).toMatchObject({ ok: false, reason: 'unknown_type' });
  });
});

describe('identification timestamps', () => {
  it('are NTP: seconds since 1900 in the high half, a binary fraction in the low half', () => {
    const id = ntpFromUnixMs(1_000_500);
    expect(idHigh(id)).toBe(1000 + 2208988800);
    expect(idLow(id)).toBe(2 ** 31);
    expect(ntpFromUnixMs(0)).toBe(2208988800n << 32n);
    expect(ntpFromUnixMs(1001)).toBeGreaterThan(ntpFromUnixMs(1000));
  });
});

describe('UDP', () => {
  const src = ipToU32('10.1.0.100');
  const dst = ipToU32('10.0.0.2');

  it('computes a pseudo-header checksum that verifies and catches corruption', () => {
    const segment = encodeUdp(src, dst, 40000, 434, fromHex('0102030405'));
    expect(decodeUdp(segment, 0, segment.length, src, dst)).toMatchObject({
      ok: true,
      udp: { srcPort: 40000, dstPort: 434 },
    });
    const bad = segment.slice();
    bad[9] ^= 0x10;
    expect(decodeUdp(bad, 0, bad.length, src, dst)).toEqual({ ok: false, reason: 'bad_udp_checksum' });
    // The pseudo-header binds the addresses.
    expect(decodeUdp(segment, 0, segment.length, src, dst + 1)).toEqual({ ok: false, reason: 'bad_udp_checksum' });
    const noChecksum = segment.slice();
    noChecksum[6] = noChecksum[7] = 0;
    expect(decodeUdp(noChecksum, 0, noChecksum.length, src, dst + 1).ok).toBe(true);
  });

  it('matches a checksum computed independently', () => {
    const segment = encodeUdp(0xc0a80001, 0xc0a800c7, 1234, 80, new TextEncoder().encode('hi'));
    // Hand sum: c0a8 + 0001 + c0a8 + 00c7 + 0011 + 000a + 04d2 + 0050 + 000a + 6869.
    let sum = 0xc0a8 + 0x0001 + 0xc0a8 + 0x00c7 + 0x0011 + 0x000a + 0x04d2 + 0x0050 + 0x000a + 0x6869;
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    expect((segment[6] << 8) | segment[7]).toBe(~sum & 0xffff);
  });

  it('rejects truncations, a bad length and non-UDP datagrams', () => {
    const datagram = buildUdpDatagram({ src, dst, srcPort: 5, dstPort: 434 }, fromHex('aabbcc'));
    expect(parseUdpDatagram(datagram)).toMatchObject({
      ok: true,
      udp: { srcPort: 5, dstPort: 434, payload: fromHex('aabbcc') },
    });
    for (let n = 0; n < datagram.length; n++)
      expect(parseUdpDatagram(datagram.subarray(0, n)).ok, `length ${n}`).toBe(false);
    const segment = datagram.subarray(20);
    for (let n = 0; n < UDP_HEADER_BYTES; n++)
      expect(decodeUdp(segment, 0, n, src, dst)).toEqual({ ok: false, reason: 'truncated' });
    const longLength = segment.slice();
    longLength[5] += 1;
    expect(decodeUdp(longLength, 0, longLength.length, src, dst)).toEqual({ ok: false, reason: 'bad_udp_length' });
    expect(parseUdpDatagram(buildIpv4({ src, dst, protocol: IpProto.ICMP }, new Uint8Array(8)))).toEqual({
      ok: false,
      reason: 'not_udp',
    });
    expect(() => encodeUdp(src, dst, 70000, 1, new Uint8Array(0))).toThrow(/srcPort/);
  });
});
