// Issue 11 item 5 in the lab (root): the lab's links are 1500-byte Ethernet, so a datagram with DF that no longer fits
// once an SGW has sealed it is answered with ICMP 3/4 carrying the MTU that fits, and the sender's kernel lowers its
// path MTU (what TCP's PMTUD needs). CH0 (home network, kernel stack) pings CH1 (Site 1) through SGW0 → SGW1, with its
// route's MTU raised from the applications' 1200 to the link's 1500.
import { afterAll, describe, expect, it } from 'vitest';
import { figure6World } from '../../src/lab/figure6-world.js';
import { F6 } from '../../src/lab/scenarios/figure6-cases.js';
import type { World } from '../../src/lab/world.js';
import { LINK_MTU, LinuxNetwork } from '../../src/net/linux/network.js';
import { runCommand } from '../../src/net/netns.js';
import { canRunNetns } from '../io/topology.js';

process.env.MIPSEC_NATIVE = '1';

describe.skipIf(!canRunNetns)("path MTU through the lab's SGWs (root)", () => {
  let world: World<LinuxNetwork> | undefined;
  afterAll(async () => {
    world?.close();
    await world?.network.close();
  });

  it("a DF ping from CH0 too big for the VPN gets ICMP 3/4; CH0's kernel then knows the path MTU, below the link's", async () => {
    const network = new LinuxNetwork();
    const w = await figure6World({ engine: 'native', network });
    world = w;
    await network.ready();
    const ns = network.host('ch0').ns;
    await runCommand('ip', [
      'netns',
      'exec',
      ns,
      'ip',
      'route',
      'replace',
      `${F6.ch1}/32`,
      'via',
      w.map.sgw('sgw0')!.inside,
      'mtu',
      String(LINK_MTU),
    ]);
    const ping = (size: number) =>
      runCommand('ip', [
        'netns',
        'exec',
        ns,
        'ping',
        '-n',
        '-M',
        'do',
        '-s',
        String(size),
        '-c',
        '3',
        '-i',
        '0.3',
        '-W',
        '1',
        F6.ch1,
      ]).then(
        (r) => r.stdout,
        (err: Error) => err.message,
      );
    // 1472 bytes of ICMP data: a 1500-byte datagram, which cannot carry the VPN's layers on a 1500-byte link.
    const first = await ping(LINK_MTU - 28);
    const route = (await runCommand('ip', ['netns', 'exec', ns, 'ip', 'route', 'get', F6.ch1])).stdout;
    const learned = Number(/mtu (\d+)/.exec(route)?.[1]);
    expect(learned, `${first}\n${route}`).toBeGreaterThan(1200);
    expect(learned).toBeLessThan(LINK_MTU);
    // What fits the learned MTU reaches CH1 and comes back.
    expect(await ping(learned - 28)).toMatch(/3 received/);
  }, 60_000);
});
