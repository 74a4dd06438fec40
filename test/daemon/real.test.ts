// `mipsec sgw` on real interfaces (root), only ever inside namespaces this test creates: two SGW
// namespaces joined by a veth (the Internet), a host namespace behind each. A ping between the hosts
// crosses the daemons as SKIP (protocol 57) — seen in their status SAs and in a capture on the link —
// and SIGTERM leaves no tc filter, TUN or route of theirs behind.
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FILTER_PREF } from '../../src/net/linux/attached.js';
import { canRunNetns } from '../io/topology.js';
import { figure6Fixture } from './fixture.js';
import { ROOT, freshDist, sgwNamespaces, statusJson as status, waitFor, type Started } from './sgw-namespaces.js';

const lab = sgwNamespaces('mipsec-d');
const { ns, ipIn, inNs } = lab;

/** What the kernel of a namespace holds that a daemon could have added. */
function leftovers(name: string): { filters: string; links: string[]; routes: string } {
  const filters = ['inside', 'outside']
    .map((d) =>
      execFileSync('ip', ['netns', 'exec', name, 'tc', 'filter', 'show', 'dev', d, 'ingress'], { encoding: 'utf8' }),
    )
    .join('');
  const links = (JSON.parse(ipIn(name, '-j', 'link', 'show')) as { ifname: string }[]).map((l) => l.ifname).sort();
  return { filters, links, routes: ipIn(name, 'route', 'show') };
}

const startSgw = lab.startSgw;

describe.skipIf(!canRunNetns)('mipsec sgw on real interfaces (root, in test namespaces only)', () => {
  const fx = figure6Fixture();
  const daemons: Started[] = [];

  beforeAll(async () => {
    expect(await freshDist()).toBe(true);
    lab.build();
  }, 180_000);

  afterAll(() => lab.removeAll());

  it('a config naming an interface the namespace lacks: exit 2, the field and the fix, nothing added', async () => {
    const r = await inNs(ns.h0, process.execPath, [
      join(ROOT, 'bin/mipsec.js'),
      'sgw',
      '--config',
      fx.file('sgw0.yaml'),
      '--status-socket',
      fx.file('h0.sock'),
    ]).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `${fx.file('sgw0.yaml')}: interfaces: no interface named 'inside' in this network namespace (it has: lo, eth0)`,
    );
    expect(
      execFileSync('ip', ['netns', 'exec', ns.h0, 'tc', 'qdisc', 'show', 'dev', 'eth0'], { encoding: 'utf8' }),
    ).not.toContain('ingress');
  });

  it('a ping between the hosts crosses the two daemons as SKIP; SIGTERM removes every filter, TUN and route they added', async () => {
    const before = { sgw0: leftovers(ns.sgw0), sgw1: leftovers(ns.sgw1) };
    daemons.push(
      startSgw('sgw0', fx.file('sgw0.yaml'), fx.file('sgw0.sock')),
      startSgw('sgw1', fx.file('sgw1.yaml'), fx.file('sgw1.sock')),
    );
    for (const d of daemons)
      await waitFor(
        () => `the daemon on ${d.socket} to start (output: ${d.out()})`,
        () => d.out().includes('"event":"started"'),
      );
    // Both interfaces of each SGW are redirected into their TUNs while it runs.
    const running = leftovers(ns.sgw0);
    expect(running.filters).toMatch(new RegExp(`pref ${FILTER_PREF} u32`));
    expect(running.filters).toContain('Egress Redirect to device t-outside');
    expect(running.links).toEqual(expect.arrayContaining(['t-inside', 't-outside']));

    const capture = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns.sgw1,
        'tshark',
        '-i',
        'outside',
        '-l',
        '-n',
        '-f',
        'ip',
        '-T',
        'fields',
        '-e',
        'ip.src',
        '-e',
        'ip.dst',
        '-e',
        'ip.proto',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let captured = '';
    let captureLog = '';
    capture.stdout!.on('data', (c: Buffer) => (captured += c.toString()));
    capture.stderr!.on('data', (c: Buffer) => (captureLog += c.toString()));
    await waitFor('tshark to capture', () => captureLog.includes('Capturing on'));
    await new Promise((r) => setTimeout(r, 300));
    const ping = await inNs(ns.h0, 'ping', ['-c', '5', '-i', '0.2', '-W', '2', '10.1.0.10']).catch(
      (err: { stdout: string }) => ({ stdout: err.stdout }),
    );
    await new Promise((r) => setTimeout(r, 500));
    capture.kill('SIGTERM');
    await new Promise((r) => capture.once('exit', r));
    // The first echo may be spent on certificate discovery; the rest come back.
    expect(ping.stdout).toMatch(/5 packets transmitted, [3-5] received/);
    // On the link between the SGWs: SKIP (57) both ways, the hosts' ICMP never in the clear.
    const packets = captured
      .trim()
      .split('\n')
      .map((line) => line.split('\t'));
    expect(
      packets.filter(([src, dst, proto]) => src === '198.18.0.1' && dst === '198.18.1.1' && proto === '57').length,
    ).toBeGreaterThanOrEqual(3);
    expect(
      packets.filter(([src, dst, proto]) => src === '198.18.1.1' && dst === '198.18.0.1' && proto === '57').length,
    ).toBeGreaterThanOrEqual(3);
    expect(packets.filter(([, , proto]) => proto === '1')).toEqual([]);

    for (const d of daemons) {
      const s = await status(d.socket);
      const through = (direction: string) =>
        s.sas.filter((sa) => sa.mode === 'skip' && sa.direction === direction).reduce((n, sa) => n + sa.packets, 0);
      expect(through('out'), JSON.stringify(s.sas)).toBeGreaterThanOrEqual(3);
      expect(through('in'), JSON.stringify(s.sas)).toBeGreaterThanOrEqual(3);
      expect(s.counters.verdicts.forward).toBeGreaterThanOrEqual(3);
    }

    for (const d of daemons) d.child.kill('SIGTERM');
    for (const d of daemons) expect(await d.exited).toBe(0);
    for (const d of daemons) expect(d.out()).toContain('"event":"stopped"');
    expect({ sgw0: leftovers(ns.sgw0), sgw1: leftovers(ns.sgw1) }).toEqual(before);
  }, 60_000);
});
