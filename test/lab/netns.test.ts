// `mipsec lab` on real network namespaces (root): the draft's cases with real links, TUNs, ping and
// TCP; the stacks on every link as the draft writes them; nothing of the lab survives a run or a
// Ctrl-C; `--json`'s shape; and the `--pcap` captures decode in tshark down to the inner IPv4.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CaseResult } from '../../src/lab/case.js';
import { runLab } from '../../src/lab/run.js';
import { SPI_EXPECT } from '../../src/lab/spi.js';
import { listNamespaces } from '../../src/net/netns.js';
import { canRunNetns } from '../io/topology.js';
import { ensureTshark, tsharkFields } from '../wireshark/tshark.js';

process.env.MIPSEC_NATIVE = '1';
const BIN = resolve(import.meta.dirname, '../../bin/mipsec.js');
const labNamespaces = async () => (await listNamespaces()).filter((n) => n.startsWith('mlab-'));

function explain(c: CaseResult): string {
  return `${c.id}: ${c.failures.join('\n  ')}`;
}

describe.skipIf(!canRunNetns)('mipsec lab in network namespaces (root)', () => {
  let before: string[] = [];
  beforeAll(async () => {
    before = await labNamespaces();
  });

  it("4.4, 4.5.3, 4.5.7a, 3.2, spi and the handover pass with real traffic; every link shows the draft's stacks; no namespace is left", async () => {
    const report = await runLab({
      mode: 'netns',
      engine: 'native',
      only: ['4.4', '4.5.3', '4.5.7a', '3.2', 'spi', 'handover'],
    });
    expect(report.cases.map((c) => c.id)).toEqual(['4.4', '4.5.3', '4.5.7a', '3.2', 'handover', 'spi']);
    for (const c of report.cases) expect(c.pass, explain(c)).toBe(true);
    const byId = new Map(report.cases.map((c) => [c.id, c]));
    // Real applications between the SMN (away, in Site 1) and CH0: ping and a TCP transfer through the roles.
    const away = byId.get('4.5.3')!;
    expect(away.rttMs).toBeGreaterThan(0);
    expect(away.tcpMbps).toBeGreaterThan(0);
    expect(away.stacks['sgw1-net'][0]).toMatch(
      /^smn > sgw1: IPv4\(10\.1\.0\.100>198\.18\.1\.1\) \/ SKIP\(NSID1 MKID 10\.0\.0\.100 > NSID0\) \/ AH\[next\]/,
    );
    expect(byId.get('spi')!.stacks).toEqual(SPI_EXPECT);
    expect(byId.get('spi')!.tcpMbps).toBeGreaterThan(0);
    expect(byId.get('handover')!.moves).toHaveLength(4);
    // None of this run's namespaces is left (another test file's lab may come and go meanwhile).
    expect((await labNamespaces()).filter((n) => !before.includes(n))).toEqual([]);
  }, 240_000);

  it('--pcap: per-link pcaps and the key log; tshark with the SKIP dissector and esp_sa opens SPI- and SKIP-mode ESP down to the inner IPv4', async () => {
    ensureTshark();
    const dir = mkdtempSync(join(tmpdir(), 'mipsec-lab-pcap-'));
    const report = await runLab({ mode: 'netns', engine: 'native', only: ['4.5.2', 'spi'], pcapDir: dir });
    for (const c of report.cases) expect(c.pass, explain(c)).toBe(true);
    expect(readdirSync(join(dir, 'spi')).sort()).toEqual([
      'esp_sa',
      'gwa-net.pcap',
      'gwb-net.pcap',
      'internet.pcap',
      'skip-sa.jsonl',
    ]);
    for (const [caseId, inner] of [
      ['spi', '10.20.0.10'],
      ['4.5.2', '10.1.0.10'],
    ] as const) {
      const caseDir = join(dir, caseId);
      const uat = readFileSync(join(caseDir, 'esp_sa'), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('"'))
        .flatMap((l) => ['-o', `uat:esp_sa:${l}`]);
      expect(uat.length).toBeGreaterThan(0);
      const rows = tsharkFields(
        join(caseDir, 'internet.pcap'),
        ['frame.protocols', 'ip.dst'],
        ['-o', 'esp.enable_encryption_decode:TRUE', ...uat],
      );
      expect(rows.length).toBeGreaterThan(0);
      const protocols = rows.map((r) => r[0][0]);
      // The request: outer IPv4 / [SKIP / AH /] ESP / inner IPv4 / UDP (to the echo port), the inner destination the correspondent.
      const wanted = caseId === 'spi' ? 'raw:ip:esp:ip:udp' : 'raw:ip:skip:ah:esp:ip:udp';
      expect(
        protocols.some((p) => p.startsWith(wanted)),
        protocols.join(', '),
      ).toBe(true);
      const request = rows.find((r) => r[0][0].startsWith(wanted) && r[1].includes(inner));
      expect(request, `no decrypted request to ${inner} in ${caseId}`).toBeDefined();
    }
    expect(
      readFileSync(join(dir, '4.5.2', 'skip-sa.jsonl'), 'utf8')
        .trim()
        .split('\n').length,
    ).toBeGreaterThan(0);
  }, 180_000);

  it('node bin/mipsec.js lab --json: the shape, exit 0 and no namespace left', () => {
    const run = spawnSync('node', [BIN, 'lab', '--json', '--only', '4.5.1,spi'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as { mode: string; cases: CaseResult[] };
    expect(out.mode).toBe('netns');
    expect(out.cases.map((c) => [c.id, c.pass])).toEqual([
      ['4.5.1', true],
      ['spi', true],
    ]);
    for (const c of out.cases) expect(typeof c.title).toBe('string');
    expect(out.cases[0].rttMs).toBeGreaterThan(0);
    // The role nodes' loops over the TCP phase: every SGW, the HA and the SMN, packets carried natively or punted.
    const dp = out.cases[0].tcpDataPath!;
    expect(Object.keys(dp.nodes).sort()).toEqual(['ha', 'sgw0', 'sgw1', 'sgw2', 'smn']);
    expect(dp.fastPath + dp.slowPath).toBeGreaterThan(0);
    expect(dp.slowPath).toBe(Object.values(dp.slowPathReasons).reduce((a, b) => a + b, 0));
    const left = (spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.match(/^mlab-\S+/gm) ?? []).filter(
      (n) => !before.includes(n),
    );
    expect(left).toEqual([]);
  }, 150_000);

  it('Ctrl-C in the middle of a run removes every namespace the lab made', async () => {
    const child = spawn('node', [BIN, 'lab', '--only', '4.5.3'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    // Wait until the lab has made its namespaces (a whole Figure 6 world), then interrupt it.
    let made: string[] = [];
    for (let i = 0; i < 200 && made.length < 10; i++) {
      await new Promise((r) => setTimeout(r, 100));
      made = (await labNamespaces()).filter((n) => !before.includes(n));
    }
    expect(made.length, output).toBeGreaterThanOrEqual(10);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(output).toContain('SIGINT: removing namespaces');
    const left = (await labNamespaces()).filter((n) => made.includes(n));
    expect(left).toEqual([]);
    expect(existsSync(`/run/netns/${made[0]}`)).toBe(false);
  }, 60_000);
});
