// SA install cost against table size (issue 10 hole 11): CPU µs per install, and the remove that undoes it,
// with 1k to 64k SAs already installed. Flat means an install does not copy the table.
import type { Engine, SaDesc } from '../engine/types.js';

export const INSTALL_TABLE_SIZES = [1024, 4096, 16384, 65536] as const;
/** Installs (and removes) per measured round, and rounds per table size: the fastest round counts, so load from
 * other processes and a GC pause in one round do not. */
const PROBES = 64;
const ROUNDS = 7;
/** Ids of the probe SAs, above any id the fill uses. */
const PROBE_ID = 0x10000000;
const KEY = new Uint8Array(20).fill(7);

/** An inbound SPI-mode End SA; its id names its SPI, so every id is a distinct inbound lookup key. */
export function probeSa(id: number): SaDesc {
  const esp = { suite: 'aes128gcm' as const, key: KEY, spi: 255 + id };
  return { id, direction: 'in', role: 'end', mode: 'spi', src: '198.18.9.1', dst: '198.18.9.2', esp };
}

/** Fills `engine` to `size` SAs (ids from filled.next on), then returns the CPU µs one install and remove cost. */
export function installCostUs(engine: Engine, size: number, filled: { next: number }): number {
  while (filled.next <= size) engine.installSa(probeSa(filled.next++));
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.cpuUsage();
    for (let k = 0; k < PROBES; k++) engine.installSa(probeSa(PROBE_ID + k));
    for (let k = 0; k < PROBES; k++) engine.removeSa(PROBE_ID + k);
    const used = process.cpuUsage(start);
    best = Math.min(best, (used.user + used.system) / PROBES);
  }
  return best;
}
