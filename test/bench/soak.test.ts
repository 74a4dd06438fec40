// mipsec bench soak: the minute samples, the drift from minute 2 to the last, and a real 60-s soak of the
// daemons in namespaces (root) as CI runs it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { drift, formatMinute, type MinuteSample, type SoakReport } from '../../src/bench/soak/index.js';
import { canRunNetns } from '../io/topology.js';

const node = (rssMiB: number, fds: number, sas: number, routes = 1) => ({
  rssMiB,
  heapMiB: 20,
  heapTotalMiB: 32,
  externalMiB: 2,
  fds,
  sas,
  routes,
  drops: {},
});
const minute = (m: number, gwa: ReturnType<typeof node>): MinuteSample => ({
  minute: m,
  nodes: { gwa },
  tcpMbps: 100,
  udpMbps: 20,
  registrations: m * 240,
});

describe('soak figures', () => {
  it('drift runs from minute 2 (after warm-up) to the last; fewer than 3 minutes have none', () => {
    expect(drift([minute(1, node(100, 40, 2))])).toBeNull();
    const d = drift([
      minute(1, node(90, 38, 2)),
      minute(2, node(100, 40, 4)),
      minute(3, node(101, 40, 4)),
      minute(4, node(104, 41, 5, 2)),
    ]);
    expect(d).toEqual({ gwa: { rssPercent: 4, fds: 1, sas: 1, routes: 1 } });
  });

  it('a minute prints each daemon, and a dead one says so', () => {
    const text = formatMinute({
      ...minute(2, node(100, 40, 4)),
      nodes: { gwa: { ...node(100, 40, 4), drops: { replay: 3 } }, ha: { error: 'exited: boom' } },
    });
    expect(text.split('\n')).toEqual([
      'minute 2: TCP 100.0 Mbit/s, UDP 20.0 Mbit/s, 480 registrations accepted so far',
      '  gwa  rss 100 MiB, heap 20 MiB (of 32), external 2 MiB, 40 fds, 4 SAs, 1 routes; drops and punts: replay 3',
      '  ha: exited: boom',
    ]);
  });
});

const cli = new URL('../../bin/mipsec.js', import.meta.url).pathname;
const built = existsSync(new URL('../../dist/bench/soak/registrar.js', import.meta.url));

describe.skipIf(!canRunNetns || !built)('mipsec bench soak (built CLI, real namespaces)', () => {
  it('one minute: every daemon alive and sampled, TCP and UDP carried, registrations accepted', () => {
    const run = spawnSync(process.execPath, [cli, 'bench', 'soak', '--minutes', '1', '--json'], {
      encoding: 'utf8',
      timeout: 240_000,
    });
    expect(run.status, run.stderr.slice(-2000)).toBe(0);
    const report = JSON.parse(run.stdout) as SoakReport;
    expect(report.crashes).toEqual([]);
    expect(report.minutes).toHaveLength(1);
    const [m] = report.minutes;
    expect(m.trafficErrors).toBeUndefined();
    expect(m.tcpMbps).toBeGreaterThan(1);
    expect(m.udpMbps).toBeGreaterThan(1);
    expect(m.registrations).toBeGreaterThan(20);
    for (const name of ['gwa', 'gwb', 'ha']) {
      const n = m.nodes[name];
      expect(n, name).toMatchObject({ rssMiB: expect.any(Number), fds: expect.any(Number) });
      if ('error' in n) throw new Error(n.error);
      expect(n.rssMiB).toBeGreaterThan(10);
    }
    expect(m.nodes.gwa).toMatchObject({ sas: expect.any(Number) });
    expect(run.stderr).toContain('minute 1: TCP');
  }, 240_000);
});
