// A key tuple as a number: the first 52 bits of its SHA-256, exact in a double, so a set of them is a Map of numbers
// (16 bytes an entry) rather than of long strings. Used for retired key tuples (keying.ts) and replay marks
// (../daemon/replay-marks.ts). One crypto.hash call, not a Hash object: both run on a new key's first packet, cold
// after an idle spell (≈ 50 µs against ≈ 130).
import { hash } from 'node:crypto';

export function digest52(bytes: string | Uint8Array): number {
  const d = hash('sha256', bytes, 'buffer');
  return d.readUIntBE(0, 6) * 16 + (d[6] >> 4);
}
