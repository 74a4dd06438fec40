// §3.5.1 (Figure 5): the SMN outside reaches a correspondent through a proxy in its home network:
// SMN → proxy through the VPN with SGW0, proxy → CH through the VPN between SGWs, the reply back
// to the proxy the same way and from the proxy to the SMN by Mobile IP via the HA. Both engines.
import { afterEach, describe, expect, it } from 'vitest';
import { figure6World } from '../../src/lab/figure6-world.js';
import { HOME_PROXY, homeProxyStacks, runProxy, sendViaHomeProxy } from '../../src/lab/proxy.js';
import { SETTLE_MS } from '../../src/lab/scenario.js';
import { clearCaptures, stacksByLink } from '../../src/lab/stacks.js';
import type { World } from '../../src/lab/world.js';
import { ipToU32 } from '../../src/wire/addr.js';

process.env.MIPSEC_NATIVE = '1';
describe.each(['native', 'ts'] as const)('§3.5.1 on the %s engine', (engine) => {
  let world: World | undefined;
  afterEach(() => world?.close());

  it('§3.5.1 communication through the proxy at home: VPN SMN/SGW0, VPN SGW0/SGW2, Mobile IP back', async () => {
    world = await figure6World({ engine });
    runProxy(world.addHost('proxy', HOME_PROXY), ipToU32(HOME_PROXY));
    world.place('outside');
    world.network.runFor(SETTLE_MS);
    clearCaptures(world.network);
    const replies = sendViaHomeProxy(world, 'via the home proxy');
    world.network.runFor(SETTLE_MS);

    expect(replies).toHaveLength(1);
    expect(Buffer.from(replies[0].subarray(6)).toString()).toBe('via the home proxy');
    expect(stacksByLink(world.network, world.keyLog.resolver())).toEqual(homeProxyStacks());
  });
});
