// A key tuple as a number: the first 52 bits of its SHA-256, exact in a double, so a set of them is a Map of numbers
// (16 bytes an entry) rather than of long strings. Used for retired key tuples (keying.ts) and replay marks
// (../daemon/replay-marks.ts). Both run on a new key's first packet, cold after an idle spell: their owners take the
// addon's SHA-256 when there is one (src/engine/addon.ts nativeSha256, its digest fetched once); the default is one
// node:crypto hash() call (≈ 50 µs cold: it looks the digest up every time; a Hash object ≈ 130).
import { hash } from 'node:crypto';

/** SHA-256 of `bytes` (32 bytes). */
export type Sha256 = (bytes: Uint8Array) => Uint8Array;

export const nodeSha256: Sha256 = (bytes) => hash('sha256', bytes, 'buffer');

export function digest52(bytes: string | Uint8Array, sha256: Sha256 = nodeSha256): number {
  const d = sha256(typeof bytes === 'string' ? Buffer.from(bytes) : bytes);
  const view = new DataView(d.buffer, d.byteOffset, d.byteLength);
  return view.getUint32(0) * 2 ** 20 + view.getUint16(4) * 16 + (d[6] >> 4);
}
