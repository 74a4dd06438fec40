// The native ICMP 40 parser agrees with src/wire/icmp40.ts on real messages, every truncation and every bit flip.
import { describe, expect, it } from 'vitest';
import { Icmp40Code, buildSecurityFailure, parseSecurityFailure } from '../../src/wire/icmp40.js';
import { ADDR, datagram, endSaPair, runOne } from '../engine/fixtures.js';
import { Op } from '../../src/engine/index.js';
import { binding, nativeEngine } from './addon.js';

const parseNative = binding().wire.parseIcmp40 as (m: Uint8Array) => {
  status: string;
  code?: number;
  pointer?: number;
  spi?: number;
};

function parseTs(m: Uint8Array): { status: string; code?: number; pointer?: number; spi?: number } {
  const r = parseSecurityFailure(m, 0);
  if (!r.ok) return { status: r.reason };
  const { code, pointer, spi } = r.message;
  return spi === undefined ? { status: 'ok', code, pointer } : { status: 'ok', code, pointer, spi };
}

describe('ICMP type 40 parse (native vs TS)', () => {
  const pair = endSaPair({
    suite: 'aes128gcm',
    ah: 'hmac-sha256-128',
    mode: 'skip',
    id: 4,
    src: ADDR.sgw0,
    dst: ADDR.sgw1,
  });
  const spiPair = endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 5, src: ADDR.sgw0, dst: ADDR.sgw1 });
  const originals = [
    runOne(nativeEngine([pair.out]), Op.ENCAP, datagram(64), pair.out.id).packet,
    runOne(nativeEngine([spiPair.out]), Op.ENCAP, datagram(64), spiPair.out.id).packet,
    datagram(40),
  ];
  const messages = originals.flatMap((o) =>
    [Icmp40Code.badSpi, Icmp40Code.authenticationFailed, Icmp40Code.needAuthorization].map((c) =>
      buildSecurityFailure(c, o),
    ),
  );

  it('parses real messages: code, pointer and the SPI it names', () => {
    for (const m of messages) {
      const r = parseNative(m);
      expect(r.status).toBe('ok');
      expect(r).toEqual(parseTs(m));
    }
    expect(parseNative(messages[0]).spi).toBe(1);
    expect(parseNative(messages[3]).spi).toBe(spiPair.out.esp!.spi);
  });

  it('agrees on every truncation and every single-bit flip', () => {
    for (const m of messages) {
      for (let len = 0; len < m.length; len++)
        expect(parseNative(m.subarray(0, len))).toEqual(parseTs(m.subarray(0, len)));
      for (let bit = 0; bit < m.length * 8; bit++) {
        const bad = Uint8Array.from(m);
        bad[bit >> 3] ^= 1 << (bit & 7);
        const r = parseNative(bad);
        expect(r).toEqual(parseTs(bad));
      }
    }
  });

  it('agrees on re-checksummed header edits (type, code, pointer anywhere, quotes too short)', () => {
    const checksum = binding().crypto.ipChecksum as (b: Uint8Array) => number;
    const seal = (m: Uint8Array): Uint8Array => {
      m[2] = m[3] = 0;
      const c = checksum(m);
      m[2] = c >> 8;
      m[3] = c & 0xff;
      return m;
    };
    const statuses = new Set<string>();
    for (const m of messages) {
      for (const [at, values] of [
        [0, [0, 39, 41]],
        [1, [0, 5, 6, 255]],
        [6, [0, 1, 255]],
        [7, [0, 19, 20, 23, 24, 255]],
      ] as const) {
        for (const v of values) {
          const edited = Uint8Array.from(m);
          edited[at] = v;
          const r = parseNative(seal(edited));
          expect(r).toEqual(parseTs(edited));
          statuses.add(r.status);
        }
      }
      for (const len of [8, 20, 27, 28]) {
        const short = seal(Uint8Array.from(m.subarray(0, len)));
        expect(parseNative(short)).toEqual(parseTs(short));
        statuses.add(parseNative(short).status);
      }
    }
    expect([...statuses].sort()).toEqual(['bad_code', 'bad_pointer', 'bad_type', 'ok', 'truncated']);
  });
});
