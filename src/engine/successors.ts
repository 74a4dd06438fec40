// Successor configurations (docs/engine.md §4.3): checked alike for both engines, and flattened for the addon.
import { KIJN_BYTES } from '../keys/derive.js';
import { ipToU32, isIpv4 } from '../wire/addr.js';
import type { SuccessorConfig } from './types.js';

/** The configuration that keys nothing (an engine's state until the first setSuccessors, and after close). */
export const NO_SUCCESSORS: SuccessorConfig = { validUntil: 0, windowStart: 0, ids: [], peers: [] };

/** Throws a RangeError naming the first field of `c` that is out of range. */
export function checkSuccessors(c: SuccessorConfig): void {
  const u32 = (field: string, v: unknown) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff)
      throw new RangeError(`setSuccessors: ${field} must be an integer in 0..4294967295, got ${String(v)}`);
  };
  u32('validUntil', c.validUntil);
  u32('windowStart', c.windowStart);
  c.ids.forEach((id, i) => u32(`ids[${i}]`, id));
  c.peers.forEach((p, i) => {
    if (!isIpv4(p.address))
      throw new RangeError(`setSuccessors: peers[${i}].address must be dotted IPv4, got ${p.address}`);
    p.templates.forEach((id, k) => u32(`peers[${i}].templates[${k}]`, id));
    p.kijns.forEach(({ n, kijn }, k) => {
      if (!(kijn instanceof Uint8Array) || kijn.length !== KIJN_BYTES)
        throw new RangeError(`setSuccessors: peers[${i}].kijns[${k}].kijn must be ${KIJN_BYTES} bytes`);
      u32(`peers[${i}].kijns[${k}].n`, n);
    });
  });
  (c.blocked ?? []).forEach((d, i) => {
    if (!Number.isInteger(d) || d < 0 || d >= 2 ** 52)
      throw new RangeError(`setSuccessors: blocked[${i}] must be a 52-bit digest (src/keys/digest52.ts)`);
  });
}

/**
 * setSuccessors' arguments for the addon (native/node/engine.cc SetSuccessors), after checkSuccessors: the counts and
 * numbers, the Kijn bytes (the caller zeroes them), the digests.
 */
export function flattenSuccessors(c: SuccessorConfig): {
  words: Uint32Array;
  kijns: Uint8Array;
  blocked: Float64Array;
} {
  checkSuccessors(c);
  const words = [c.validUntil, c.windowStart, c.ids.length, ...c.ids, c.peers.length];
  const kijns = new Uint8Array(c.peers.reduce((sum, p) => sum + p.kijns.length, 0) * KIJN_BYTES);
  let at = 0;
  for (const p of c.peers) {
    words.push(ipToU32(p.address), p.templates.length, ...p.templates, p.kijns.length);
    for (const { n, kijn } of p.kijns) {
      words.push(n);
      kijns.set(kijn, at);
      at += KIJN_BYTES;
    }
  }
  return { words: Uint32Array.from(words), kijns, blocked: Float64Array.from(c.blocked ?? []) };
}
