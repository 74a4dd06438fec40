// The engine addon's AES key unwrap, which the roles give SkipKeying for a new key's Kp, against node:crypto's (the
// default): the same Kp from every wrapped Kp, and the same refusals of a forged one or the wrong Kijn.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { nativeKeyUnwrap } from '../../src/engine/addon.js';
import { unwrapKp, wrapKp } from '../../src/keys/derive.js';

const native = nativeKeyUnwrap();

describe.skipIf(!native)("the addon's key unwrap (native/crypto/keywrap.cc)", () => {
  it('unwraps every wrapped Kp to what node:crypto unwraps it to', () => {
    for (let i = 0; i < 64; i++) {
      const kijn = randomBytes(32);
      const kp = randomBytes(32);
      const wrapped = wrapKp(kijn, kp);
      expect(unwrapKp(kijn, wrapped, native)).toEqual(new Uint8Array(kp));
      expect(unwrapKp(kijn, wrapped)).toEqual(new Uint8Array(kp));
    }
  });

  it('refuses a wrapped Kp with any bit flipped, or under another Kijn, as node:crypto does', () => {
    const kijn = randomBytes(32);
    const wrapped = wrapKp(kijn, randomBytes(32));
    for (let bit = 0; bit < wrapped.length * 8; bit += 7) {
      const forged = wrapped.slice();
      forged[bit >> 3] ^= 1 << (bit & 7);
      expect(unwrapKp(kijn, forged, native)).toBeUndefined();
      expect(unwrapKp(kijn, forged)).toBeUndefined();
    }
    expect(unwrapKp(randomBytes(32), wrapped, native)).toBeUndefined();
    expect(unwrapKp(randomBytes(32), wrapped)).toBeUndefined();
  });
});
