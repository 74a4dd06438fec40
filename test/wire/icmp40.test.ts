// ICMP Security Failures (RFC 2521): Pointer rules of wire-formats §7, quoting, checksum, parse checks.
import { describe, expect, it } from 'vitest';
import { ipToU32 } from '../../src/wire/addr.js';
import { writeAhHeader } from '../../src/wire/ah.js';
import { describe as describePacket } from '../../src/wire/describe.js';
import {
  Icmp40Code,
  buildSecurityFailure,
  buildSecurityFailurePacket,
  offendingSpiPointer,
  parseSecurityFailure,
} from '../../src/wire/icmp40.js';
import { IpProto, buildIpv4, internetChecksum, onesComplementSum, parseIpv4 } from '../../src/wire/ipv4.js';
import { NSID_IPV4, NSID_NONE, encodeSkipHeader } from '../../src/wire/skip.js';

const coa = ipToU32('10.1.0.100');
const sgw1 = ipToU32('198.18.1.10');

function skip(next: number, srcMkid?: number): Uint8Array {
  return encodeSkipHeader({
    srcNsid: srcMkid === undefined ? NSID_NONE : NSID_IPV4,
    dstNsid: NSID_NONE,
    srcMkid,
    nextHeader: next,
    n: 17184,
    kijAlg: 250,
    cryptAlg: next === IpProto.ESP ? 250 : 0,
    macAlg: next === IpProto.AH ? 250 : 0,
    compAlg: 0,
    wrappedKp: new Uint8Array(40).fill(7),
  });
}

function ah(next: number, spi: number): Uint8Array {
  const out = new Uint8Array(36);
  writeAhHeader(out, 0, { nextHeader: next, length: 36, spi, seq: 0x01020304 });
  return out;
}

const payload = Uint8Array.from({ length: 64 }, (_, i) => 0x80 + i);
const spiEsp = Uint8Array.from([0, 0, 1, 44, 0, 0, 0, 9]); // SPI 300, seq 9

const offenders = {
  skipAh: buildIpv4(
    { src: coa, dst: sgw1, protocol: IpProto.SKIP },
    Uint8Array.from([...skip(IpProto.AH, ipToU32('10.0.0.100')), ...ah(4, 1), ...payload]),
  ),
  skipEsp: buildIpv4(
    { src: coa, dst: sgw1, protocol: IpProto.SKIP },
    Uint8Array.from([...skip(IpProto.ESP), ...[0, 0, 0, 1, 0, 0, 0, 5], ...payload]),
  ),
  bareAh: buildIpv4({ src: coa, dst: sgw1, protocol: IpProto.AH }, Uint8Array.from([...ah(50, 4242), ...payload])),
  bareEsp: buildIpv4({ src: coa, dst: sgw1, protocol: IpProto.ESP }, Uint8Array.from([...spiEsp, ...payload])),
  plain: buildIpv4({ src: coa, dst: sgw1, protocol: IpProto.UDP }, payload),
};

describe('ICMP type 40', () => {
  it('Pointer: IHL·4 + len(SKIP) + 4 for a SKIP-framed AH, IHL·4 + len(SKIP) for ESP, 0 without an SPI', () => {
    expect(offendingSpiPointer(offenders.skipAh)).toBe(20 + 56 + 4);
    expect(offendingSpiPointer(offenders.skipEsp)).toBe(20 + 52);
    expect(offendingSpiPointer(offenders.bareAh)).toBe(24);
    expect(offendingSpiPointer(offenders.bareEsp)).toBe(20);
    expect(offendingSpiPointer(offenders.plain)).toBe(0);
  });

  it.each(Object.entries(offenders))(
    '%s: quotes the headers up to the SPI and 8 bytes more; checksum and parse round-trip',
    (name, original) => {
      const msg = buildSecurityFailure(Icmp40Code.authenticationFailed, original);
      const pointer = offendingSpiPointer(original);
      const quoted = (pointer ? pointer + 4 : 20) + 8;
      expect(msg.length).toBe(8 + quoted);
      expect([msg[0], msg[1], msg[4], msg[5], (msg[6] << 8) | msg[7]]).toEqual([40, 1, 0, 0, pointer]);
      expect(onesComplementSum(msg, 0, msg.length)).toBe(0xffff);
      expect(Array.from(msg.subarray(8))).toEqual(Array.from(original.subarray(0, quoted)));
      const parsed = parseSecurityFailure(msg, 0);
      expect(parsed.ok).toBe(true);
      if (!parsed.ok) return;
      expect(parsed.message.code).toBe(1);
      expect(parsed.message.pointer).toBe(pointer);
      expect(parsed.message.spi).toBe({ skipAh: 1, skipEsp: 1, bareAh: 4242, bareEsp: 300, plain: undefined }[name]);
    },
  );

  it('clips the quote to the datagram and refuses to answer garbage or bad codes', () => {
    const short = buildIpv4({ src: coa, dst: sgw1, protocol: IpProto.ESP }, spiEsp.subarray(0, 6));
    expect(buildSecurityFailure(Icmp40Code.badSpi, short).length).toBe(8 + 26);
    expect(() => buildSecurityFailure(Icmp40Code.badSpi, new Uint8Array(10))).toThrow(
      /valid IPv4 header \(truncated\)/,
    );
    expect(() => buildSecurityFailure(6 as never, offenders.plain)).toThrow(/code must be 0\.\.5/);
  });

  it('wraps into an IPv4 datagram (protocol 1) that describe() shows', () => {
    const packet = buildSecurityFailurePacket(sgw1, coa, Icmp40Code.needAuthentication, offenders.skipEsp);
    const ip = parseIpv4(packet, 0);
    expect(ip.ok && [ip.header.protocol, ip.header.src, ip.header.dst]).toEqual([1, sgw1, coa]);
    expect(describePacket(packet)).toBe('IPv4(198.18.1.10>10.1.0.100) / ICMP40(code 4)');
  });

  it('parse checks: every truncation, type, checksum, code, pointer', () => {
    const msg = buildSecurityFailure(Icmp40Code.badSpi, offenders.skipAh);
    for (let l = 0; l < msg.length; l++) {
      const part = msg.subarray(0, l);
      const r = parseSecurityFailure(part, 0);
      // A cut that only drops zero words keeps the checksum valid: then the (shorter) quote decides.
      const checksumHolds = l >= 8 && onesComplementSum(part, 0, l) === 0xffff;
      const want =
        l < 8
          ? 'truncated'
          : !checksumHolds
            ? 'bad_checksum'
            : l - 8 < 20
              ? 'truncated'
              : l - 8 < 80 + 4
                ? 'bad_pointer'
                : 'ok';
      expect(r.ok ? 'ok' : r.reason, `length ${l}`).toBe(want);
    }
    const fix = (m: Uint8Array) => {
      m[2] = 0;
      m[3] = 0;
      const sum = internetChecksum(m, 0, m.length);
      m[2] = sum >> 8;
      m[3] = sum & 0xff;
      return m;
    };
    const variant = (at: number, value: number) => {
      const m = Uint8Array.from(msg);
      m[at] = value;
      return fix(m);
    };
    expect(parseSecurityFailure(variant(0, 3), 0)).toEqual({ ok: false, reason: 'bad_type' });
    expect(parseSecurityFailure(variant(1, 6), 0)).toEqual({ ok: false, reason: 'bad_code' });
    expect(parseSecurityFailure(Uint8Array.from(msg).fill(0, 2, 4), 0)).toEqual({ ok: false, reason: 'bad_checksum' });
    expect(parseSecurityFailure(variant(7, 19), 0)).toEqual({ ok: false, reason: 'bad_pointer' });
    expect(parseSecurityFailure(variant(7, msg.length - 8 - 3), 0)).toEqual({ ok: false, reason: 'bad_pointer' });
    expect(parseSecurityFailure(fix(Uint8Array.from(msg.subarray(0, 8 + 19))), 0)).toEqual({
      ok: false,
      reason: 'truncated',
    });
    const reserved = variant(4, 0xff);
    expect(parseSecurityFailure(reserved, 0).ok).toBe(true); // reserved is ignored on receipt
  });
});
