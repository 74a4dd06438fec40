// The MN-HA keys (RFC 5944 §3.5) an SMN and its home agent share. The node config has no field for
// them, so the daemons read a private file given with --mn-ha-key: one line per mobile node,
//     <home address> <SPI> <key as hex>
// ('#' starts a comment). The same file can serve the HA (all lines) and the SMN (its own line).
import { isIpv4 } from '../wire/addr.js';
import { readSecretFile } from '../keys/keyfile.js';
import type { MnHaKey } from '../wire/mobileip.js';

export interface MnHaEntry {
  homeAddress: string;
  auth: MnHaKey;
}

const LINE = /^(\S+)\s+(\S+)\s+(\S+)$/;
/** RFC 5944 §3.5.1: SPIs 0-255 are reserved. */
const MIN_SPI = 256;
const MIN_KEY_BYTES = 16;
const MAX_KEY_BYTES = 64;

/** Reads and checks the file; errors name the file, the line and the fix. The file text is zeroed. */
export function loadMnHaKeys(path: string): MnHaEntry[] {
  const bytes = readSecretFile(path);
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8');
  bytes.fill(0);
  const entries: MnHaEntry[] = [];
  const fail = (n: number, why: string): never => {
    for (const e of entries) e.auth.key.fill(0);
    throw new Error(
      `${path}: line ${n}: ${why}; each line is '<home address> <SPI> <key hex>', ` +
        `e.g. 10.0.0.100 4096 ${'5a'.repeat(16)}`,
    );
  };
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const m = LINE.exec(line);
    if (!m) return fail(i + 1, 'expected three fields');
    const [, homeAddress, spiText, keyHex] = m;
    if (!isIpv4(homeAddress)) return fail(i + 1, `${JSON.stringify(homeAddress)} is not an IPv4 address`);
    const spi = Number(spiText);
    if (!/^\d+$/.test(spiText) || spi < MIN_SPI || spi > 0xffffffff)
      return fail(i + 1, `SPI must be a whole number from ${MIN_SPI} to 4294967295`);
    if (!/^([0-9a-fA-F]{2})+$/.test(keyHex) || keyHex.length / 2 < MIN_KEY_BYTES || keyHex.length / 2 > MAX_KEY_BYTES) {
      return fail(i + 1, `the key must be ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES} bytes of hex`);
    }
    if (entries.some((e) => e.homeAddress === homeAddress)) return fail(i + 1, `${homeAddress} is listed twice`);
    entries.push({ homeAddress, auth: { spi, key: new Uint8Array(Buffer.from(keyHex, 'hex')) } });
  });
  return entries;
}
