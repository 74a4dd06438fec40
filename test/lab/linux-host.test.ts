// The Host contract on LinuxNetwork (root): the same semantics as MemoryHost on real namespaces —
// hooks see the arrival interface, forwarding decrements the TTL once, drops are counted by reason,
// captures name sender and receiver, proxy ARP answers for another address, and close() removes all.
import { describe, expect, it } from 'vitest';
import { echoServer, collectEchoes, probe } from '../../src/lab/traffic.js';
import { sleep } from '../../src/lab/runtime-linux.js';
import { LinuxNetwork } from '../../src/net/linux/network.js';
import { listNamespaces } from '../../src/net/netns.js';
import type { PacketContext } from '../../src/net/types.js';
import { describe as describePacket } from '../../src/wire/describe.js';
import { canRunNetns } from '../io/topology.js';
import { routedPair } from './routed.js';

process.env.MIPSEC_NATIVE = '1';

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await sleep(20);
}

describe.skipIf(!canRunNetns)('LinuxNetwork hosts (root)', () => {
  it('a → router → b: hooks, forwarding, drops by reason, captures, proxy ARP; nothing left after close()', async () => {
    const net = new LinuxNetwork();
    try {
      const { a, r, b } = routedPair(net);
      expect(a.lookupRoute('10.60.0.10')).toEqual({ prefix: '0.0.0.0/0', via: '10.50.0.1', iface: 'eth0' });
      echoServer(b);
      const seen: PacketContext[] = [];
      const seenPackets: string[] = [];
      r.addHook('input', (p, ctx) => {
        seen.push(ctx);
        seenPackets.push(describePacket(p));
        return 'pass';
      });
      await net.startCapture();

      const echoes = collectEchoes(a);
      expect(a.send(probe('10.50.0.10', '10.60.0.10', 7))).toEqual({ ok: true });
      await until(() => echoes.seqs.includes(7));
      expect(echoes.seqs).toEqual([7]);
      expect(
        seen.map((c) => [c.iface, c.link]),
        JSON.stringify(seenPackets),
      ).toEqual([
        ['l', 'left'],
        ['r', 'right'],
      ]);
      await sleep(300);
      const left = net
        .link('left')
        .captures()
        .map((f) => `${f.from} > ${f.to}: ${describePacket(f.packet)}`);
      expect(left).toEqual([
        'a/eth0 > r/l: IPv4(10.50.0.10>10.60.0.10) / UDP(40000>7)',
        'r/l > a/eth0: IPv4(10.60.0.10>10.50.0.10) / UDP(7>40000)',
      ]);
      // The router took one off the TTL (64 → 63), the kernel none.
      expect(net.link('right').captures()[0].packet[8]).toBe(63);

      // TTL 1 at the router, a destination nobody routes, a packet for someone else at a plain host.
      const dying = probe('10.50.0.10', '10.60.0.10', 8);
      dying[8] = 1;
      dying[10] = dying[11] = 0;
      let sum = 0;
      for (let i = 0; i < 20; i += 2) sum += (dying[i] << 8) | dying[i + 1];
      while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
      dying[10] = (~sum >> 8) & 0xff;
      dying[11] = ~sum & 0xff;
      a.send(dying);
      expect(b.send(probe('10.60.0.10', '192.0.2.1', 9))).toEqual({ ok: true }); // b routes it to r, which has no route
      r.inject(probe('10.60.0.10', '10.50.0.10', 10)); // r forwards it to a (not via a hook)
      await until(() => r.counters().ttl_expired === 1 && r.counters().no_route === 1);
      expect(r.counters(), JSON.stringify(seenPackets)).toMatchObject({ ttl_expired: 1, no_route: 1 });
      b.inject(probe('10.50.0.10', '10.70.0.1', 11), { iface: 'eth0' });
      await until(() => b.counters().not_for_us === 1);
      expect(b.counters().not_for_us).toBe(1);

      // Proxy ARP: r answers on the left link for 10.50.0.99, so a's packets for it reach r's hooks.
      r.setProxy('10.50.0.99', 'l', true);
      a.addRoute('10.50.0.99/32', { iface: 'eth0' });
      seen.length = 0;
      a.send(probe('10.50.0.10', '10.50.0.99', 12));
      await until(() => seen.length > 0);
      expect(seen[0]).toMatchObject({ iface: 'l', link: 'left' });
    } finally {
      await net.close();
    }
    expect((await listNamespaces()).filter((n) => n.startsWith(net.session.prefix))).toEqual([]);
  }, 60_000);
});
