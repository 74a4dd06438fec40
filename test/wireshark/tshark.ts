// Runs tshark for the tests: installs it from apt when missing (CI runs as root on a fresh machine), and runs it
// with a private, empty configuration directory so no personal preferences or plugins change the result.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const DISSECTOR = resolve(import.meta.dirname, '../../wireshark/mipsec-skip.lua');

function tsharkPresent(): boolean {
  return spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Makes sure tshark runs; installs the Debian package when it is missing. Throws with the fix when it cannot. */
export function ensureTshark(): void {
  if (tsharkPresent()) return;
  if (process.getuid?.() !== 0)
    throw new Error('tshark is missing and the tests are not root: install it with `sudo apt-get install -y tshark`');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Answer the package's only question (may non-root users capture?) so the install never waits for input.
  execFileSync(
    'sh',
    ['-c', 'echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections'],
    { env, stdio: 'ignore' },
  );
  execFileSync('apt-get', ['update', '-qq'], { env, stdio: 'ignore', timeout: 300_000 });
  execFileSync('apt-get', ['install', '-y', '-qq', 'tshark'], { env, stdio: 'ignore', timeout: 600_000 });
  if (!tsharkPresent()) throw new Error('tshark is still missing after `apt-get install tshark`');
}

/** A fresh configuration home; put a `wireshark/esp_sa` in it to give tshark a key table. */
export function configHome(): string {
  return mkdtempSync(join(tmpdir(), 'mipsec-wireshark-home-'));
}

export interface TsharkRun {
  /** Defaults to a fresh, empty configuration home. */
  home?: string;
  /** Load the mipsec dissector (default true). */
  dissector?: boolean;
}

export function tshark(args: readonly string[], run: TsharkRun = {}): string {
  const lua = run.dissector === false ? [] : ['-X', `lua_script:${DISSECTOR}`];
  const result = spawnSync('tshark', [...lua, ...args], {
    encoding: 'utf8',
    env: { ...process.env, XDG_CONFIG_HOME: run.home ?? configHome(), HOME: run.home ?? configHome() },
    timeout: 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) throw new Error(`tshark ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  // A script that fails to load is reported on stderr, an error while dissecting as a "Lua Error" item in the
  // tree; tshark exits 0 either way, so both are failures here.
  if (/lua/i.test(result.stderr)) throw new Error(`tshark reported a Lua problem: ${result.stderr}`);
  if (result.stdout.includes('Lua Error'))
    throw new Error(
      `the dissector raised a Lua error: ${result.stdout.split('\n').filter((l) => l.includes('Lua Error'))[0]}`,
    );
  return result.stdout;
}

/** `-T fields` output: one row per packet, one entry per field, each entry the list of its occurrences. */
export function tsharkFields(
  pcap: string,
  fields: readonly string[],
  args: readonly string[] = [],
  run: TsharkRun = {},
): string[][][] {
  const out = tshark(
    [
      '-r',
      pcap,
      ...args,
      '-T',
      'fields',
      '-E',
      'occurrence=a',
      '-E',
      'aggregator=|',
      '-E',
      'separator=/t',
      ...fields.flatMap((f) => ['-e', f]),
    ],
    run,
  );
  return out
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => line.split('\t').map((v) => (v === '' ? [] : v.split('|'))));
}
