// LinuxNetwork's two kinds of host (root): plain hosts on their kernel's own stack (no TUN, no redirect, no
// I/O loop; kernel forwarding, ping, real UDP sockets for onDeliver/send) and a role host whose interface loops
// run the role's engine with a table per interface, so a policy the role compiles forwards without JS.
process.env.MIPSEC_NATIVE = '1';
import { describe, expect, it } from 'vitest';
import { createEngine, NativeEngine } from '../../src/engine/index.js';
import { collectEchoes, echoServer, probe } from '../../src/lab/traffic.js';
import { sleep } from '../../src/lab/runtime-linux.js';
import { APPS_PORT, LinuxHost, LinuxNetwork } from '../../src/net/linux/network.js';
import { APP_MTU } from '../../src/net/linux/interface-loops.js';
import { PlainHost } from '../../src/net/linux/plain-host.js';
import { listNamespaces, runCommand } from '../../src/net/netns.js';
import type { EnginePunt, Host } from '../../src/net/types.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { describe as describePacket } from '../../src/wire/describe.js';
import { buildIpv4, IpProto } from '../../src/wire/ipv4.js';
import { canRunNetns } from '../io/topology.js';

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await sleep(20);
}

function devices(net: LinuxNetwork, host: string): string[] {
  return (JSON.parse(net.session.ipSync(net.host(host).ns, ['-j', 'link', 'show'])) as { ifname: string }[]).map(
    (l) => l.ifname,
  );
}

/** a (plain) — r — b (plain) with r made by `router`. */
function pair(net: LinuxNetwork, router: (net: LinuxNetwork) => PlainHost | LinuxHost) {
  net.addLink('left');
  net.addLink('right');
  const a = net.addHost('a', { plain: true });
  const r = router(net);
  const b = net.addHost('b', { plain: true });
  a.addInterface('eth0', 'left', '10.52.0.10/24');
  r.addInterface('l', 'left', '10.52.0.1/24');
  r.addInterface('r', 'right', '10.62.0.1/24');
  b.addInterface('eth0', 'right', '10.62.0.10/24');
  a.addRoute('0.0.0.0/0', { via: '10.52.0.1' });
  b.addRoute('0.0.0.0/0', { via: '10.62.0.1' });
  return { a, r, b };
}

describe.skipIf(!canRunNetns)('LinuxNetwork plain and role hosts (root)', () => {
  it('plain hosts and a plain router: the kernel forwards and answers ping, UDP apps use real sockets, no TUN, hooks refused', async () => {
    const net = new LinuxNetwork();
    try {
      const { a, r, b } = pair(net, (n) => n.addHost('r', { plain: true, forwarding: true }) as PlainHost);
      expect([a, r, b].every((h) => h instanceof PlainHost && (h as Host).dataPath === undefined)).toBe(true);
      for (const h of ['a', 'r', 'b'])
        expect(
          devices(net, h).filter((d) => d.startsWith('t-')),
          h,
        ).toEqual([]);
      expect(() => r.addHook('input', () => 'pass')).toThrow(/plain host on its kernel's own stack/);
      expect(() => b.inject(probe('10.52.0.10', '10.62.0.10', 1))).toThrow(/nothing can be injected/);
      // The kernel's main table mirrors the routes, with the applications' MTU.
      expect(net.session.ipSync(a.ns, ['route', 'show', 'default'])).toMatch(
        new RegExp(`via 10\\.52\\.0\\.1 dev eth0 .*mtu ${APP_MTU}`),
      );
      // The switch bridges without running frames through iptables (where the kernel has br_netfilter at all).
      const bridgeNf = net.session.execSync(net.switchNs, 'sh', [
        '-c',
        'cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo absent',
      ]);
      expect(['0', 'absent']).toContain(bridgeNf.trim());
      echoServer(b);
      await net.ready();

      const [cmd, ...args] = net.appCommand('a', ['ping', '-n', '-q', '-c', '2', '-i', '0.2', '-W', '2', '10.62.0.10']);
      expect((await runCommand(cmd, args, { timeoutMs: 10_000 })).stdout).toMatch(/2 received/);

      const echoes = collectEchoes(a);
      expect(a.send(probe('10.52.0.10', '10.62.0.10', 7))).toEqual({ ok: true });
      await until(() => echoes.seqs.includes(7));
      expect(echoes.seqs).toEqual([7]);
      await sleep(300);
      const right = net
        .link('right')
        .captures()
        .map((f) => `${f.from} > ${f.to}: ${describePacket(f.packet)} ttl ${f.packet[8]}`);
      // The kernel router took one off the TTL (64 → 63) each way.
      expect(right).toContain('r/r > b/eth0: IPv4(10.52.0.10>10.62.0.10) / UDP(40000>7) ttl 63');
      expect(right).toContain('b/eth0 > r/r: IPv4(10.62.0.10>10.52.0.10) / UDP(7>40000) ttl 64');
      const tcp = buildIpv4(
        { src: ipToU32('10.52.0.10'), dst: ipToU32('10.62.0.10'), protocol: IpProto.TCP },
        new Uint8Array(20),
      );
      expect(() => a.send(tcp)).toThrow(/UDP through its sockets, not IP protocol 6/);
    } finally {
      await net.close();
    }
    expect((await listNamespaces()).filter((n) => n.startsWith(net.session.prefix))).toEqual([]);
  }, 60_000);

  it("a role host runs its loops on the role's engine: a table per interface, a pass policy in it forwards without JS", async () => {
    const net = new LinuxNetwork();
    const engine = createEngine('native') as NativeEngine;
    try {
      const { a, r, b } = pair(net, (n) => n.addHost('r', { forwarding: true, engine }) as LinuxHost);
      const router = r as LinuxHost;
      const tables = [router.dataPath.tableOf('l'), router.dataPath.tableOf('r'), router.dataPath.tableOf(APPS_PORT)];
      expect(new Set(tables).size).toBe(3);
      expect(tables).not.toContain(0);
      expect(devices(net, 'r')).toEqual(expect.arrayContaining(['t-l', 't-r', 't-local']));
      const seen: string[] = [];
      router.addHook('input', (p, ctx) => {
        seen.push(`${ctx.iface}: ${describePacket(p)}`);
        return 'pass';
      });
      const punts: EnginePunt[] = [];
      router.dataPath.onEnginePunt((p) => void punts.push(p));
      echoServer(b);
      await net.ready();

      // Nothing compiled: every packet is punted (no_policy) and forwarded by the JS input path.
      const echoes = collectEchoes(a);
      a.send(probe('10.52.0.10', '10.62.0.10', 1));
      await until(() => echoes.seqs.includes(1));
      expect(echoes.seqs).toEqual([1]);
      expect(seen).toEqual([
        'l: IPv4(10.52.0.10>10.62.0.10) / UDP(40000>7)',
        'r: IPv4(10.62.0.10>10.52.0.10) / UDP(7>40000)',
      ]);
      const slow = router.ioStats();
      // The kernel's own multicast (an IGMP report) may be punted too; the dispatcher leaves it out of the input path.
      expect(slow.puntReasons.no_policy).toBeGreaterThanOrEqual(2);

      // The role compiles 'pass' for both subnets into the interfaces' tables: the loops forward, JS sees nothing.
      engine.setPolicies([
        { prefix: '10.62.0.0/24', table: router.dataPath.tableOf('l'), action: 'pass', sa: 0 },
        { prefix: '10.52.0.0/24', table: router.dataPath.tableOf('r'), action: 'pass', sa: 0 },
      ]);
      for (let seq = 2; seq <= 4; seq++) a.send(probe('10.52.0.10', '10.62.0.10', seq));
      await until(() => echoes.seqs.length === 4);
      expect(echoes.seqs.sort()).toEqual([1, 2, 3, 4]);
      const fast = router.ioStats();
      expect(fast.fastPath - slow.fastPath).toBe(6);
      // A plain FORWARD goes back into the TUN it came from, for the kernel to forward (coalesced), not by raw sends.
      expect(fast.counters.txKernel - (slow.counters.txKernel ?? 0)).toBe(6);
      expect(fast.counters.txRaw - (slow.counters.txRaw ?? 0)).toBe(0);
      expect(fast.punted).toBe(slow.punted);
      expect(seen).toHaveLength(2);
      expect(punts).toEqual([]);

      // Through r the TTL drops by one, as a router's does: the kernel takes one as it forwards, after `pass` took one,
      // so the loop gives one back. With TTL 2 the echo request reaches b with TTL 1 and is answered.
      const ttl2 = ['ping', '-n', '-q', '-c', '2', '-i', '0.2', '-t', '2', '-W', '2', '10.62.0.10'];
      const [cmd, ...args] = net.appCommand('a', ttl2);
      expect((await runCommand(cmd, args, { timeoutMs: 10_000 })).stdout).toMatch(/2 received/);
    } finally {
      await net.close();
      engine.close();
    }
  }, 60_000);
});
