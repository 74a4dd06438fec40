// Manually keyed SPI-mode SAs (node config `manualSas`), as `ip xfrm state`/`policy` would set them
// up: plain RFC 4303 tunnel-mode ESP to a peer gateway. Keys come from files of one hex line
// (key + 4-byte salt, as RFC 4106/7634 KEYMAT), mode 0600; they never appear in the YAML or a log.
import type { EspSuite, Policy, Route, SaDesc } from '../engine/types.js';
import { KeyFileError, readSecretFile } from '../keys/keyfile.js';
import type { NodeConfig } from './node.js';

/** Key + salt bytes per suite (docs/engine.md §4). */
export const MANUAL_KEY_BYTES: Record<EspSuite, number> = { aes128gcm: 20, aes256gcm: 36, chacha20poly1305: 36 };

export type ManualSaEntry = NonNullable<NodeConfig['manualSas']>[number];

/** Absolute paths of one entry's key files. */
export interface ManualKeyPaths {
  out: string;
  in: string;
}

/** The command that makes a key file for `suite`. */
export function manualKeyCommand(path: string, suite: EspSuite): string {
  return `(umask 077 && openssl rand -hex ${MANUAL_KEY_BYTES[suite]} > ${path})`;
}

/** Reads a key file: mode 0600 (refused otherwise, with the chmod fix), one hex line of the suite's length. */
export function readManualKey(path: string, suite: EspSuite): Uint8Array {
  const raw = readSecretFile(path);
  const want = MANUAL_KEY_BYTES[suite];
  try {
    const text = Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString('latin1').trim();
    if (!/^[0-9a-fA-F]*$/.test(text) || text.length % 2 !== 0) {
      throw new KeyFileError(
        `${path}: expected one line of hex digits (key + salt, ${want} bytes), got other characters; make it with: ` +
          `${manualKeyCommand(path, suite)}`,
      );
    }
    if (text.length !== want * 2) {
      throw new KeyFileError(
        `${path}: expected ${want} bytes (${want * 2} hex digits) for ${suite}, got ${text.length / 2}; make it ` +
          `with: ${manualKeyCommand(path, suite)}`,
      );
    }
    return new Uint8Array(Buffer.from(text, 'hex'));
  } finally {
    raw.fill(0);
  }
}

/** What an engine needs for a node's manual SAs. */
export interface ManualSaTables {
  /**
   * Per entry: its out SA (id 2i+1) then its in SA (id 2i+2), whose selectors admit only datagrams from the
   * entry's remote prefix to its local one. The caller zeroes the keys once installed.
   */
  sas: SaDesc[];
  /** Outbound: each entry's remote prefix → its out SA. */
  policies: Policy[];
  /** Inbound: datagrams unwrapped for a local prefix are forwarded as they are. */
  routes: Route[];
}

/** Turns config entries into SPI-mode end SAs; `outside` is this gateway's outer address. */
export function manualSaTables(
  entries: readonly ManualSaEntry[],
  keys: readonly ManualKeyPaths[],
  outside: string,
): ManualSaTables {
  const tables: ManualSaTables = { sas: [], policies: [], routes: [] };
  try {
    entries.forEach((entry, i) => {
      const outId = 2 * i + 1;
      const sa = (
        id: number,
        direction: 'out' | 'in',
        src: string,
        dst: string,
        spi: number,
        keyPath: string,
      ): SaDesc => ({
        id,
        direction,
        role: 'end',
        mode: 'spi',
        src,
        dst,
        esp: { suite: entry.suite, spi, key: readManualKey(keyPath, entry.suite) },
      });
      tables.sas.push(sa(outId, 'out', outside, entry.peer, entry.spiOut, keys[i].out));
      // RFC 4301 §5.2: what the peer's key opens must come from its remote prefix and go to our local one.
      const selectors = { src: [entry.remote], dst: [entry.local] };
      tables.sas.push({ ...sa(outId + 1, 'in', entry.peer, outside, entry.spiIn, keys[i].in), selectors });
      tables.policies.push({ prefix: entry.remote, sa: outId });
      if (!tables.routes.some((r) => r.prefix === entry.local)) tables.routes.push({ prefix: entry.local, sa: 0 });
    });
  } catch (err) {
    for (const sa of tables.sas) sa.esp!.key.fill(0);
    throw err;
  }
  return tables;
}
