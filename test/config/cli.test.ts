// mipsec check-config through the CLI's run(), as the dispatcher in src/cli/main.ts calls it.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { run } from '../../src/cli/config.js';

let out: string[];
let err: string[];
beforeEach(() => {
  out = [];
  err = [];
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
});
afterEach(() => vi.restoreAllMocks());

const EXAMPLES = ['README.md', 'ha.yaml', 'network.yaml', 'sgw0.yaml', 'sgw1.yaml', 'sgw2.yaml', 'smn.yaml'].map(
  (f) => `examples/figure6/${f}`,
);

describe('mipsec check-config', () => {
  it('passes the Figure 6 examples (a directory glob, README included)', async () => {
    expect(await run('check-config', EXAMPLES)).toBe(0);
    expect(err).toEqual([]);
    expect(out.filter((l) => !l.includes(': warning: ')).slice(0, -1)).toEqual([
      'examples/figure6/README.md: skipped (not a .yaml or .yml file)',
      'examples/figure6/ha.yaml: ok (node ha, role ha)',
      'examples/figure6/network.yaml: ok (network-map figure6: 3 sites, 3 SGWs (Border: sgw0, sgw1, sgw2), 1 HA, 4 hosts)',
      'examples/figure6/sgw0.yaml: ok (node sgw0, role sgw)',
      'examples/figure6/sgw1.yaml: ok (node sgw1, role sgw)',
      'examples/figure6/sgw2.yaml: ok (node sgw2, role sgw)',
      'examples/figure6/smn.yaml: ok (node smn, role smn)',
    ]);
    // Warnings depend on whether the identity files were made here (they are not committed).
    expect(out.at(-1)).toMatch(/^6 files checked: 6 ok, 0 with errors, \d+ warnings?$/);
  });

  it('exits 1 and names the field when a file has an error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mipsec-cli-'));
    try {
      writeFileSync(join(dir, 'network.yaml'), readFileSync('examples/figure6/network.yaml'));
      const bad = join(dir, 'sgw1.yaml');
      writeFileSync(
        bad,
        readFileSync('examples/figure6/sgw1.yaml', 'utf8').replace('address: 10.1.0.1', 'address: 198.18.1'),
      );
      expect(await run('check-config', [join(dir, 'network.yaml'), bad])).toBe(1);
      expect(err).toEqual([
        `${bad}: interfaces[0].address: expected an IPv4 address such as 198.18.1.1, got "198.18.1"`,
      ]);
      expect(out.at(-1)).toBe('2 files checked: 1 ok, 1 with errors, 0 warnings');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prints JSON reports with --json', async () => {
    expect(await run('check-config', ['--json', 'examples/figure6/network.yaml'])).toBe(0);
    expect(JSON.parse(out.join('\n'))).toEqual([
      {
        file: 'examples/figure6/network.yaml',
        kind: 'network-map',
        errors: [],
        warnings: [],
        summary: 'network-map figure6: 3 sites, 3 SGWs (Border: sgw0, sgw1, sgw2), 1 HA, 4 hosts',
      },
    ]);
  });

  it('shows help, and refuses bad usage with exit 2', async () => {
    expect(await run('check-config', ['--help'])).toBe(0);
    expect(out[0].split('\n')[0]).toBe('usage: mipsec check-config [--json] FILE...');
    expect(await run('check-config', [])).toBe(2);
    expect(err[0]).toMatch(/^mipsec check-config: no \.yaml or \.yml files given/);
    expect(await run('check-config', ['--frobnicate', 'x.yaml'])).toBe(2);
    expect(err[1]).toMatch(/^mipsec check-config: Unknown option '--frobnicate'/);
  });
});
