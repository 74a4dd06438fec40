// §3.5.1 (Figure 5): the SMN outside reaches a correspondent through a proxy in its home network:
// SMN → proxy through the VPN with SGW0, proxy → CH through the VPN between SGWs, the reply back
// to the proxy the same way and from the proxy to the SMN by Mobile IP via the HA. Both engines.
import { afterEach, describe, expect, it } from 'vitest';
import { figure6World } from '../../src/lab/figure6.js';
import { endAhEsp, ipip, SGW, smnId, udp } from '../../src/lab/formats.js';
import { proxyRequest, PROXY_OUT_PORT, PROXY_PORT, runProxy } from '../../src/lab/proxy.js';
import { F6 } from '../../src/lab/scenarios/figure6.js';
import { SETTLE_MS } from '../../src/lab/scenario.js';
import { clearCaptures, stacksByLink } from '../../src/lab/stacks.js';
import { ECHO_PORT } from '../../src/lab/traffic.js';
import type { World } from '../../src/lab/world.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildUdpDatagram, parseUdpDatagram } from '../../src/wire/udp.js';

process.env.MIPSEC_NATIVE = '1';
const PROXY = '10.0.0.20';

describe.each(['native', 'ts'] as const)('§3.5.1 on the %s engine', (engine) => {
  let world: World | undefined;
  afterEach(() => world?.close());

  it('§3.5.1 communication through the proxy at home: VPN SMN/SGW0, VPN SGW0/SGW2, Mobile IP back', async () => {
    world = await figure6World({ engine });
    runProxy(world.addHost('proxy', PROXY), ipToU32(PROXY));
    world.place('outside');
    world.network.runFor(SETTLE_MS);
    clearCaptures(world.network);
    const replies: Uint8Array[] = [];
    world.smnHost.onDeliver((p) => {
      const u = parseUdpDatagram(p);
      if (u.ok && u.udp.srcPort === PROXY_PORT) replies.push(u.udp.payload.slice());
    });
    const data = new TextEncoder().encode('via the home proxy');
    world.smn.send(buildUdpDatagram({ src: ipToU32(F6.home), dst: ipToU32(PROXY), srcPort: 40000, dstPort: PROXY_PORT }, proxyRequest(ipToU32(F6.ch2), ECHO_PORT, data)));
    world.network.runFor(SETTLE_MS);

    expect(replies).toHaveLength(1);
    expect(Buffer.from(replies[0].subarray(6)).toString()).toBe('via the home proxy');
    const S = smnId(F6.home);
    const toProxy = udp(F6.home, PROXY, 40000, PROXY_PORT);
    const out = udp(PROXY, F6.ch2, PROXY_OUT_PORT, ECHO_PORT);
    const back = udp(F6.ch2, PROXY, ECHO_PORT, PROXY_OUT_PORT);
    const toSmn = udp(PROXY, F6.home, PROXY_PORT, 40000);
    expect(stacksByLink(world.network, world.keyLog.resolver())).toEqual({
      internet: [
        `smn > sgw0: ${endAhEsp(F6.out, F6.sgw0, S, SGW, toProxy)}`, // (1) VPN SMN/proxy's SGW
        `sgw0 > sgw2: ${endAhEsp(F6.sgw0, F6.sgw2, SGW, SGW, out)}`, // (2)
        `sgw2 > sgw0: ${endAhEsp(F6.sgw2, F6.sgw0, SGW, SGW, back)}`, // (5)
        `sgw0 > smn: ${endAhEsp(F6.sgw0, F6.out, SGW, S, ipip(F6.ha, F6.out, toSmn))}`, // (8)
      ],
      'sgw0-net': [`sgw0 > proxy: ${toProxy}`, `proxy > sgw0: ${out}`, `sgw0 > proxy: ${back}`, `proxy > ha: ${toSmn}`, `ha > sgw0: ${ipip(F6.ha, F6.out, toSmn)}`],
      'sgw2-net': [`sgw2 > ch2: ${out}`, `ch2 > sgw2: ${back}`], // (3), (4)
    });
  });
});
