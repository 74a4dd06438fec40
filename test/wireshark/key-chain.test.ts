// A real capture checked by tools that share no code with mipsec (root, namespaces): `mipsec lab --pcap DIR
// --key-chain` on §4.5.3 (SMN away: next-hop and End-End layers over three SGWs), then
//   - tshark with the SKIP dissector and esp_sa finds the pings and the TCP stream inside the ESP on the Internet link
//     and in clear at home (the capture comes from the links, after the applications ran, on the fast path);
//   - wireshark/check-key-chain.py (python3 hashlib BLAKE2b + `openssl enc -id-aes256-wrap`) unwraps every wrapped Kp
//     on the wire with the logged Kij and the wire's n, and finds the logged Kp and traffic keys;
//   - the same checker fails once one key in the log is altered (a traffic key, a Kij).
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { SkipSaRecord } from '../../src/keys/keylog.js';
import { canRunNetns } from '../io/topology.js';
import { configHome, ensureTshark, tsharkFields } from './tshark.js';

const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/mipsec.js');
const CHECKER = join(ROOT, 'wireshark/check-key-chain.py');
const CASE = '4.5.3';
const APP_PORT = '5201';

function check(dir: string): { status: number | null; out: string } {
  const home = configHome();
  const run = spawnSync('python3', [CHECKER, dir], { encoding: 'utf8', timeout: 300_000, env: { ...process.env, HOME: home, XDG_CONFIG_HOME: home } });
  return { status: run.status, out: `${run.stdout}${run.stderr}` };
}

const readLog = (dir: string): SkipSaRecord[] => readFileSync(join(dir, 'skip-sa.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

/** A copy of the case's directory whose key log `alter` rewrote. */
function altered(dir: string, alter: (records: SkipSaRecord[]) => void): string {
  const copy = mkdtempSync(join(tmpdir(), 'mipsec-key-chain-altered-'));
  cpSync(dir, copy, { recursive: true });
  const records = readLog(dir);
  alter(records);
  writeFileSync(join(copy, 'skip-sa.jsonl'), records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  return copy;
}

/** One hex digit changed. */
const flip = (hex: string) => `${hex.slice(0, -1)}${hex.endsWith('0') ? '1' : '0'}`;

describe.skipIf(!canRunNetns)('key chain: a lab capture checked by an independent decoder (root)', () => {
  let dir = '';
  let records: SkipSaRecord[] = [];

  beforeAll(() => {
    ensureTshark();
    const out = mkdtempSync(join(tmpdir(), 'mipsec-key-chain-'));
    const run = spawnSync('node', [BIN, 'lab', '--netns', '--only', CASE, '--pcap', out, '--key-chain'], { encoding: 'utf8', timeout: 180_000 });
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    dir = join(out, CASE);
    records = readLog(dir);
  }, 240_000);

  it('--key-chain is refused without --pcap; the checker refuses a key log without Kij and Kp', () => {
    const bare = spawnSync('node', [BIN, 'lab', '--netns', '--only', CASE, '--key-chain'], { encoding: 'utf8' });
    expect(bare.status).toBe(2);
    expect(bare.stderr).toMatch(/--key-chain goes with the cases' --pcap DIR/);
    const plain = altered(dir, (rs) => rs.forEach((r) => { delete r.kij; delete r.kp; }));
    const result = check(plain);
    expect(result.status, result.out).not.toBe(0);
    expect(result.out).toMatch(/have no kij\/kp: run `mipsec lab --pcap DIR --key-chain`/);
  });

  it('the key log: 0600, every SA with its Kij and Kp, every AH with its coverage (End-End layers full)', () => {
    expect(statSync(join(dir, 'skip-sa.jsonl')).mode & 0o777).toBe(0o600);
    expect(records.length).toBeGreaterThanOrEqual(4);
    for (const r of records) {
      expect(r.kij, `SA ${r.sa}`).toMatch(/^[0-9a-f]{64}$/);
      expect(r.kp, `SA ${r.sa}`).toMatch(/^[0-9a-f]{64}$/);
    }
    const ahs = records.filter((r) => r.ah);
    expect(ahs.some((r) => r.role === 'end')).toBe(true);
    expect(ahs.some((r) => r.role === 'nexthop')).toBe(true);
    for (const r of ahs) expect(['full', 'headers'], `SA ${r.sa}`).toContain(r.ah!.coverage);
    for (const r of ahs.filter((a) => a.role === 'end')) expect(r.ah!.coverage).toBe('full');
  });

  it('the pcaps hold the pings and the TCP stream: in clear at home, inside the ESP on the Internet (tshark + esp_sa)', () => {
    expect(readdirSync(dir).filter((f) => f.endsWith('.pcap')).sort()).toEqual(['internet.pcap', 'sgw0-net.pcap', 'sgw1-net.pcap', 'sgw2-net.pcap']);
    const uat = readFileSync(join(dir, 'esp_sa'), 'utf8').split('\n').filter((l) => l.startsWith('"')).flatMap((l) => ['-o', `uat:esp_sa:${l}`]);
    const flows = (pcap: string, args: string[] = []) => {
      const rows = tsharkFields(join(dir, pcap), ['frame.protocols', 'icmp.type', 'tcp.port'], args);
      return {
        echo: rows.filter((r) => r[1].includes('8')).length,
        reply: rows.filter((r) => r[1].includes('0')).length,
        tcp: rows.filter((r) => r[2].includes(APP_PORT)).length,
        skip: rows.filter((r) => r[0][0].includes(':skip:')).length,
      };
    };
    const atHome = flows('sgw0-net.pcap');
    expect(atHome.echo).toBeGreaterThanOrEqual(3);
    expect(atHome.reply).toBeGreaterThanOrEqual(3);
    expect(atHome.tcp).toBeGreaterThan(100);
    const internet = flows('internet.pcap', ['-o', 'esp.enable_encryption_decode:TRUE', ...uat]);
    expect(internet.skip).toBeGreaterThan(100);
    expect(internet.echo).toBeGreaterThanOrEqual(3);
    expect(internet.tcp).toBeGreaterThan(100);
  });

  it('check-key-chain.py: every wrapped Kp on the wire unwraps with the logged Kij to the logged Kp and traffic keys', () => {
    const result = check(dir);
    expect(result.status, result.out).toBe(0);
    const m = /: (\d+) SKIP headers in (\d+) packets of 4 pcaps, (\d+) distinct wrapped Kps/.exec(result.out);
    expect(m, result.out).not.toBeNull();
    expect(Number(m![2])).toBeGreaterThan(200);
    expect(Number(m![1])).toBeGreaterThan(Number(m![2]));
    expect(Number(m![3])).toBeGreaterThanOrEqual(2);
    expect(result.out).toMatch(/^OK: every wrapped Kp unwraps/m);
  }, 300_000);

  it('check-key-chain.py fails when one traffic key or one Kij in the log is altered', () => {
    const endSa = records.find((r) => r.direction === 'out' && r.role === 'end')!;
    const badKey = check(altered(dir, (rs) => {
      const r = rs.find((x) => x.sa === endSa.sa && x.src === endSa.src && x.direction === 'out')!;
      r.esp!.key = flip(r.esp!.key);
    }));
    expect(badKey.status, badKey.out).toBe(1);
    expect(badKey.out).toMatch(new RegExp(`wrapped Kp ${endSa.wrappedKp.slice(0, 16)}… .* but logged SA ${endSa.sa} \\(out\\) differs in E_kp`));
    const badKij = check(altered(dir, (rs) => {
      for (const r of rs) if (r.kij === endSa.kij) r.kij = flip(r.kij!);
    }));
    expect(badKij.status, badKij.out).toBe(1);
    expect(badKij.out).toMatch(new RegExp(`wrapped Kp ${endSa.wrappedKp.slice(0, 16)}… .* unwraps with no logged Kij`));
  }, 300_000);
});
