// The micro-benchmark's output contract: `bench micro --json` rows, with tiny durations (values not checked).
import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MICRO_OPS, parseOpensslSpeed } from '../../src/bench/micro.js';
import { run } from '../../src/cli/bench.js';

process.env.MIPSEC_NATIVE = '1';

const opensslPresent = spawnSync('openssl', ['version']).status === 0;

/** Runs the command in-process; returns exit code, stdout lines and stderr text. */
async function bench(args: string[]): Promise<{ code: number; out: string[]; err: string }> {
  const out: string[] = [];
  let err = '';
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const error = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void (err += a.join(' ') + '\n'));
  const write = vi
    .spyOn(process.stderr, 'write')
    .mockImplementation((chunk: string | Uint8Array) => ((err += String(chunk)), true));
  try {
    return { code: await run('bench', args), out, err };
  } finally {
    log.mockRestore();
    error.mockRestore();
    write.mockRestore();
  }
}

afterEach(() => vi.restoreAllMocks());

describe('mipsec bench micro --json', () => {
  it('prints one row per op, impl and size, every figure positive and finite', async () => {
    const sizes = [64, 512];
    const { code, out, err } = await bench([
      'micro',
      '--json',
      '--seconds',
      '0.01',
      '--runs',
      '1',
      '--sizes',
      sizes.join(','),
    ]);
    expect(code).toBe(0);
    expect(out).toHaveLength(1);
    const rows = JSON.parse(out[0]) as Record<string, unknown>[];
    expect(Array.isArray(rows)).toBe(true);
    for (const row of rows) {
      expect(Object.keys(row).sort()).toEqual(['bytes', 'gbps', 'impl', 'op', 'pps']);
      expect(['native', 'ts', 'openssl']).toContain(row.impl);
      expect(MICRO_OPS as readonly unknown[]).toContain(row.op);
      if (row.impl === 'openssl') expect(row.op).toBe('encap-aes128gcm');
      expect(sizes).toContain(row.bytes);
      for (const figure of [row.pps, row.gbps] as number[]) {
        expect(typeof figure).toBe('number');
        expect(Number.isFinite(figure) && figure > 0).toBe(true);
      }
      expect(row.gbps as number).toBeCloseTo(((row.pps as number) * (row.bytes as number) * 8) / 1e9, 9);
    }
    const keys = rows.map((r) => `${r.op}/${r.impl}/${r.bytes}`);
    expect(new Set(keys).size).toBe(keys.length);
    const want = ['native', 'ts'].flatMap((impl) => MICRO_OPS.flatMap((op) => sizes.map((b) => `${op}/${impl}/${b}`)));
    if (opensslPresent) want.push(...sizes.map((b) => `encap-aes128gcm/openssl/${b}`));
    expect(keys.sort()).toEqual(want.sort());
    expect(err).toMatch(/\[\d+\/\d+\] native encap-aes128gcm 64 B/);
  });

  it('prints the human table with ratios and the three targets', async () => {
    const { code, out } = await bench(['micro', '--seconds', '0.01', '--runs', '1', '--sizes', '64']);
    expect(code).toBe(0);
    const text = out.join('\n');
    for (const op of MICRO_OPS) expect(text).toMatch(new RegExp(`^${op}\\s+64\\s`, 'm'));
    expect(text).toMatch(/nat\/ossl/);
    expect(text).toMatch(/MISSED encap 1400 B ≥ 0.8 × openssl: not measured in this run/);
    expect(text).toMatch(/(MET|MISSED) +relay headers ≥ 2 Mpps at every size: 64 B [\d.]+ [Mk]pps/);
    expect(text).toMatch(/(MET|MISSED) +native ≥ 10 × TS at 64 B: encap-aes128gcm [\d.]+×/);
    expect(text).toMatch(/SA install \(\+ remove\) cost/);
    for (const sas of [1024, 4096, 16384, 65536]) expect(text).toMatch(new RegExp(`^ +${sas} +[\\d.]+ +[\\d.]+$`, 'm'));
  });

  it('measures only the cells --ops and --impls name, and says which targets it could not check', async () => {
    const { code, out } = await bench([
      'micro',
      '--json',
      '--seconds',
      '0.01',
      '--runs',
      '1',
      '--sizes',
      '64',
      '--ops',
      'relay-hmac-full',
      '--impls',
      'native',
    ]);
    expect(code).toBe(0);
    const rows = JSON.parse(out[0]) as { op: string; impl: string; bytes: number }[];
    expect(rows.map((r) => `${r.op}/${r.impl}/${r.bytes}`)).toEqual(['relay-hmac-full/native/64']);
    const table = await bench([
      'micro',
      '--seconds',
      '0.01',
      '--runs',
      '1',
      '--sizes',
      '64',
      '--ops',
      'relay-gmac-headers',
      '--impls',
      'native',
    ]);
    const text = table.out.join('\n');
    expect(text).toMatch(/MISSED encap 1400 B ≥ 0.8 × openssl: not measured in this run/);
    expect(text).toMatch(/native ≥ 10 × TS at 64 B: not measured in this run/);
  });

  it('rejects bad options with usage and exit code 2', async () => {
    for (const args of [
      ['micro', '--sizes', '10'],
      ['micro', '--seconds', '0'],
      ['micro', '--runs', 'x'],
      ['micro', '--bogus'],
      ['micro', '--ops', 'encap'],
      ['micro', '--impls', 'rust'],
      ['macro'],
    ]) {
      const { code, err } = await bench(args);
      expect(code, args.join(' ')).toBe(2);
      expect(err).toMatch(/usage: mipsec bench micro/);
    }
  });
});

describe('parseOpensslSpeed', () => {
  it('reads the -mr +F line (bytes per second)', () => {
    expect(
      parseOpensslSpeed(
        '+DT:AES-128-GCM:1:64\n+R:408856:AES-128-GCM:0.150000\n+H:64\n+F:25:AES-128-GCM:174445226.67\n',
      ),
    ).toBeCloseTo(174445226.67, 2);
  });
  it('falls back to the human table (1000s of bytes per second)', () => {
    const human =
      "The 'numbers' are in 1000s of bytes per second processed.\ntype             64 bytes\nAES-128-GCM     182335.57k\n";
    expect(parseOpensslSpeed(human)).toBeCloseTo(182335570, 0);
  });
  it('returns undefined for output without a rate', () => {
    expect(parseOpensslSpeed('speed: Unknown cipher aes-128-gcm\n')).toBeUndefined();
  });
});
