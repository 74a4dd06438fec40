// The engine addon's packet keys (native/crypto/packet_keys.cc: unwrap and both BLAKE2b-512 hashes in one call), which
// the roles give SkipKeying for a new key's first packet, against derive.ts packetKeys (node:crypto and libsodium,
// the default): the known-answer vectors, the same keys for every algorithm pair, the same refusals of a forged key.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nativePacketKeys } from '../../src/engine/addon.js';
import { packetKeys, wrapKp, type TrafficKeySpec } from '../../src/keys/derive.js';
import { KEY_BYTES, SkipAlg, type EspSuite, type MacAlg } from '../../src/engine/types.js';

const native = nativePacketKeys();
const hex = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString('hex') : undefined);
const crypts: (TrafficKeySpec | undefined)[] = [
  undefined,
  ...Object.entries(SkipAlg.crypt).map(([suite, alg]) => ({ alg, length: KEY_BYTES[suite as EspSuite] })),
];
const macs: (TrafficKeySpec | undefined)[] = [
  undefined,
  ...Object.entries(SkipAlg.mac).map(([mac, alg]) => ({ alg, length: KEY_BYTES[mac as MacAlg] })),
];

describe.skipIf(!native)("the addon's packet keys (native/crypto/packet_keys.cc)", () => {
  it('gives the known-answer Kp, E_kp and A_kp (test/fixtures/keys/skip-kat.json)', () => {
    const kat = JSON.parse(readFileSync(new URL('../fixtures/keys/skip-kat.json', import.meta.url), 'utf8')) as Record<
      string,
      string
    > & { inputs: { kp: string } };
    const kijn = Buffer.from(kat.kijn, 'hex');
    const wrapped = Buffer.from(kat.wrappedKp, 'hex');
    for (const [suite, alg] of Object.entries(SkipAlg.crypt))
      for (const [mac, macAlg] of Object.entries(SkipAlg.mac)) {
        const keys = native!(
          kijn,
          wrapped,
          { alg, length: KEY_BYTES[suite as EspSuite] },
          { alg: macAlg, length: KEY_BYTES[mac as MacAlg] },
        );
        expect(hex(keys?.kp)).toBe(kat.inputs.kp);
        expect(hex(keys?.crypt)).toBe(kat[`E_kp ${suite}`]);
        expect(hex(keys?.mac)).toBe(kat[`A_kp ${mac}`]);
      }
  });

  it('derives what packetKeys derives for every algorithm pair, and no key it was not asked for', () => {
    for (let i = 0; i < 16; i++) {
      const kijn = randomBytes(32);
      const wrapped = wrapKp(kijn, randomBytes(32));
      for (const crypt of crypts)
        for (const mac of macs) {
          const got = native!(kijn, wrapped, crypt, mac);
          const want = packetKeys(kijn, wrapped, crypt, mac);
          expect(got && { kp: hex(got.kp), crypt: hex(got.crypt), mac: hex(got.mac) }).toEqual(
            want && { kp: hex(want.kp), crypt: hex(want.crypt), mac: hex(want.mac) },
          );
          expect('crypt' in got!).toBe(crypt !== undefined);
          expect('mac' in got!).toBe(mac !== undefined);
        }
    }
  });

  it('refuses a wrapped Kp with any bit flipped, or under another Kijn, as packetKeys does', () => {
    const kijn = randomBytes(32);
    const wrapped = wrapKp(kijn, randomBytes(32));
    const mac = macs[1];
    for (let bit = 0; bit < wrapped.length * 8; bit += 7) {
      const forged = wrapped.slice();
      forged[bit >> 3] ^= 1 << (bit & 7);
      expect(native!(kijn, forged, undefined, mac)).toBeUndefined();
      expect(packetKeys(kijn, forged, undefined, mac)).toBeUndefined();
    }
    expect(native!(randomBytes(32), wrapped, undefined, mac)).toBeUndefined();
    expect(packetKeys(randomBytes(32), wrapped, undefined, mac)).toBeUndefined();
  });

  it('names the argument a caller got wrong', () => {
    const kijn = randomBytes(32);
    const wrapped = wrapKp(kijn, randomBytes(32));
    expect(() => native!(kijn.subarray(1), wrapped, undefined, macs[1])).toThrow(/kijn must be 32 bytes/);
    expect(() => native!(kijn, wrapped.subarray(1), undefined, macs[1])).toThrow(/wrapped must be 40 bytes/);
    expect(() => native!(kijn, wrapped, { alg: 1, length: 65 }, undefined)).toThrow(/cryptLength must be an integer/);
  });
});
