// digest52 keys the replay marks a daemon journals across restarts: whichever SHA-256 computes it (the addon's, which
// the daemon and the roles pass, or node:crypto's by default), it is the first 52 bits of the tuple's SHA-256, as
// lines written before expect.
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { nativeSha256 } from '../../src/engine/addon.js';
import { digest52, nodeSha256 } from '../../src/keys/digest52.js';

const first52 = (bytes: Uint8Array | string) => {
  const d = createHash('sha256').update(bytes).digest();
  return Number(d.readBigUInt64BE(0) >> 12n);
};
const native = nativeSha256();

describe.each([
  ['node:crypto', nodeSha256],
  ['the addon', native],
])('digest52 with the SHA-256 of %s', (_, sha256) => {
  it.skipIf(!sha256)('is the first 52 bits of SHA-256, of bytes and of text, exact in a double', () => {
    for (let i = 0; i < 64; i++) {
      const bytes = randomBytes(i * 3);
      expect(digest52(bytes, sha256)).toBe(first52(bytes));
      const text = `sgw:10.0.0.${i}|${479_000 + i}|1|${bytes.toString('hex')}`;
      expect(digest52(text, sha256)).toBe(first52(text));
      expect(Number.isSafeInteger(digest52(bytes, sha256))).toBe(true);
    }
  });
});
