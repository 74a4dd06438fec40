// Two hosts with a router between them on any Network: a on link 'left' (<left>.0.10/24), r at .1
// on both links, b on link 'right' (<right>.0.10/24), default routes via r.
import type { Host, Network } from '../../src/net/types.js';

export function routedPair(net: Network, left = '10.50', right = '10.60'): { a: Host; r: Host; b: Host } {
  net.addLink('left');
  net.addLink('right');
  const a = net.addHost('a');
  const r = net.addHost('r', { forwarding: true });
  const b = net.addHost('b');
  a.addInterface('eth0', 'left', `${left}.0.10/24`);
  r.addInterface('l', 'left', `${left}.0.1/24`);
  r.addInterface('r', 'right', `${right}.0.1/24`);
  b.addInterface('eth0', 'right', `${right}.0.10/24`);
  a.addRoute('0.0.0.0/0', { via: `${left}.0.1` });
  b.addRoute('0.0.0.0/0', { via: `${right}.0.1` });
  return { a, r, b };
}
