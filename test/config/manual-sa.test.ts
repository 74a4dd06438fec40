// Manually keyed SPI-mode SAs: examples/spi checks, key files (mode, length, hex) and the SaDescs,
// policies and routes an engine gets from them.
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { checkFiles, loadNode } from '../../src/config/load.js';
import { manualSaTables, readManualKey } from '../../src/config/manual-sa.js';
import { loadSpiExample } from '../../src/lab/spi.js';

const EXAMPLE = 'examples/spi';
const FILES = ['network.yaml', 'gwa.yaml', 'gwb.yaml'];
const A_TO_B = '00112233445566778899aabbccddeeff01020304';
const B_TO_A = 'ffeeddccbbaa99887766554433221100a1a2a3a4';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mipsec-manual-'));
  for (const f of FILES) copyFileSync(join(EXAMPLE, f), join(dir, f));
  mkdirSync(join(dir, 'keys'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function writeKey(name: string, hex: string, mode = 0o600): string {
  const path = join(dir, 'keys', name);
  writeFileSync(path, `${hex}\n`, { mode });
  chmodSync(path, mode);
  return path;
}

describe('examples/spi', () => {
  it('passes check-config; each missing key file is a warning with the command that makes it', async () => {
    const at = relative('.', dir);
    const reports = await checkFiles(FILES.map((f) => join(at, f)));
    expect(reports.map((r) => r.errors)).toEqual([[], [], []]);
    expect(reports.map((r) => r.summary)).toEqual([
      'network-map spi: 2 sites, 2 SGWs (Border: gwa, gwb), 0 HAs, 2 hosts',
      'node gwa, role sgw',
      'node gwb, role sgw',
    ]);
    expect(reports[1].warnings.filter((w) => w.includes('manualSas'))).toEqual([
      `${at}/gwa.yaml: warning: manualSas[0].keyOut: keys/a-to-b.key does not exist yet; create it (the peer's keyIn is the same file) with: (umask 077 && openssl rand -hex 20 > ${at}/keys/a-to-b.key)`,
      `${at}/gwa.yaml: warning: manualSas[0].keyIn: keys/b-to-a.key does not exist yet; create it (the peer's keyOut is the same file) with: (umask 077 && openssl rand -hex 20 > ${at}/keys/b-to-a.key)`,
    ]);
  });

  it('with its key files, turns into out/in SPI-mode end SAs (the in SA selects remote → local), a policy and a route', async () => {
    writeKey('a-to-b.key', A_TO_B);
    writeKey('b-to-a.key', B_TO_A);
    const loaded = await loadNode(join(dir, 'gwb.yaml'));
    expect(loaded.ok && loaded.warnings.filter((w) => w.includes('manualSas'))).toEqual([]);
    if (!loaded.ok) return;
    const tables = manualSaTables(loaded.node.manualSas!, loaded.paths.manualKeys!, '198.18.20.1');
    expect(
      tables.sas.map(({ esp, ...rest }) => ({ ...rest, esp: { ...esp, key: Buffer.from(esp!.key).toString('hex') } })),
    ).toEqual([
      {
        id: 1,
        direction: 'out',
        role: 'end',
        mode: 'spi',
        src: '198.18.20.1',
        dst: '198.18.10.1',
        esp: { suite: 'aes128gcm', spi: 8194, key: B_TO_A },
      },
      {
        id: 2,
        direction: 'in',
        role: 'end',
        mode: 'spi',
        src: '198.18.10.1',
        dst: '198.18.20.1',
        esp: { suite: 'aes128gcm', spi: 4097, key: A_TO_B },
        selectors: { src: ['10.10.0.0/24'], dst: ['10.20.0.0/24'] },
      },
    ]);
    expect(tables.policies).toEqual([{ prefix: '10.10.0.0/24', sa: 1 }]);
    expect(tables.routes).toEqual([{ prefix: '10.20.0.0/24', sa: 0 }]);
  });

  it('numbers several entries 2i+1 / 2i+2 and keys each suite with its length', async () => {
    const doc = parse(readFileSync(join(dir, 'gwa.yaml'), 'utf8'));
    const base = doc.manualSas[0];
    doc.manualSas = [
      { ...base, name: 'gcm256', suite: 'aes256gcm', spiOut: 300, spiIn: 301, keyOut: 'keys/k1', keyIn: 'keys/k2' },
      {
        ...base,
        name: 'chacha',
        suite: 'chacha20poly1305',
        remote: '10.30.0.0/24',
        spiOut: 302,
        spiIn: 303,
        keyOut: 'keys/k3',
        keyIn: 'keys/k4',
      },
    ];
    writeFileSync(join(dir, 'gwa.yaml'), stringify(doc));
    const keys = ['k1', 'k2', 'k3', 'k4'].map((k, i) => writeKey(k, String(i + 1).repeat(72)));
    const loaded = await loadNode(join(dir, 'gwa.yaml'));
    if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
    const tables = manualSaTables(loaded.node.manualSas!, loaded.paths.manualKeys!, '198.18.10.1');
    expect(
      tables.sas.map((s) => [s.id, s.direction, s.esp!.suite, s.esp!.spi, s.esp!.key.length, s.esp!.key[0]]),
    ).toEqual([
      [1, 'out', 'aes256gcm', 300, 36, 0x11],
      [2, 'in', 'aes256gcm', 301, 36, 0x22],
      [3, 'out', 'chacha20poly1305', 302, 36, 0x33],
      [4, 'in', 'chacha20poly1305', 303, 36, 0x44],
    ]);
    expect(tables.policies).toEqual([
      { prefix: '10.20.0.0/24', sa: 1 },
      { prefix: '10.30.0.0/24', sa: 3 },
    ]);
    expect(tables.routes).toEqual([{ prefix: '10.10.0.0/24', sa: 0 }]);
    expect(loaded.paths.manualKeys).toEqual([
      { out: keys[0], in: keys[1] },
      { out: keys[2], in: keys[3] },
    ]);
  });

  it("the lab's loader writes fresh random 0600 key files into a temp dir, and each pair of gateways shares them", async () => {
    const first = await loadSpiExample();
    const second = await loadSpiExample();
    try {
      const [gwa, gwb] = first.nodes;
      expect(gwa.paths.manualKeys![0]).toEqual({ out: gwb.paths.manualKeys![0].in, in: gwb.paths.manualKeys![0].out });
      for (const path of [gwa.paths.manualKeys![0].out, gwa.paths.manualKeys![0].in])
        expect(statSync(path).mode & 0o777).toBe(0o600);
      const key = (paths: typeof first) =>
        Buffer.from(readManualKey(paths.nodes[0].paths.manualKeys![0].out, 'aes128gcm')).toString('hex');
      expect(key(first)).toMatch(/^[0-9a-f]{40}$/);
      expect(key(first)).not.toBe(key(second));
    } finally {
      rmSync(first.dir, { recursive: true, force: true });
      rmSync(second.dir, { recursive: true, force: true });
    }
  });
});

describe('bad key files: exact messages, never the key', () => {
  const CASES: { what: string; hex: string; mode?: number; message: (path: string) => string }[] = [
    {
      what: 'readable by others',
      hex: A_TO_B,
      mode: 0o644,
      message: (p) => `private key file ${p} is accessible by group or others (mode 0644); fix it with: chmod 600 ${p}`,
    },
    {
      what: 'too short for the suite',
      hex: A_TO_B.slice(0, 32),
      message: (p) =>
        `${p}: expected 20 bytes (40 hex digits) for aes128gcm, got 16; make it with: (umask 077 && openssl rand -hex 20 > ${p})`,
    },
    {
      what: 'not hex',
      hex: `${A_TO_B.slice(0, 38)}zz`,
      message: (p) =>
        `${p}: expected one line of hex digits (key + salt, 20 bytes), got other characters; make it with: (umask 077 && openssl rand -hex 20 > ${p})`,
    },
    {
      what: 'two keys in one file',
      hex: `${A_TO_B}\n${B_TO_A}`,
      message: (p) =>
        `${p}: expected one line of hex digits (key + salt, 20 bytes), got other characters; make it with: (umask 077 && openssl rand -hex 20 > ${p})`,
    },
  ];

  it.each(CASES.map((c, i) => [c.what, i] as const))('%s', async (_what, i) => {
    const c = CASES[i];
    writeKey('a-to-b.key', c.hex, c.mode);
    writeKey('b-to-a.key', B_TO_A);
    const file = join(dir, 'gwa.yaml');
    const [report] = await checkFiles([file]);
    const keyPath = join(dir, 'keys', 'a-to-b.key');
    expect(report.errors).toEqual([`${file}: manualSas[0].keyOut: ${c.message(keyPath)}`]);
    expect(report.errors.join('\n')).not.toContain(A_TO_B.slice(0, 16));
  });
});
