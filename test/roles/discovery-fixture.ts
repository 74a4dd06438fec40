// A CertificateDiscovery on a one-host LAN, and the outcomes of its fetches in order (bounds tests).
import { CertCache } from '../../src/keys/cache.js';
import { makeCa, makeIdentity } from '../../src/lab/world.js';
import { MemoryNetwork } from '../../src/net/memory.js';
import { Tally } from '../../src/roles/common/counters.js';
import { CertificateDiscovery, type DiscoveryOutcome } from '../../src/roles/common/discovery.js';

export function lanDiscovery(): {
  net: MemoryNetwork;
  d: CertificateDiscovery;
  outcomes: string[];
  record: (o: DiscoveryOutcome) => void;
} {
  const net = new MemoryNetwork();
  net.addLink('lan');
  const host = net.addHost('a');
  host.addInterface('eth0', 'lan', '10.0.0.1/24');
  const nowS = Math.floor(net.clock.now() / 1000);
  const ca = makeCa(nowS);
  const own = makeIdentity(ca.key, 'sgw:10.0.0.1', nowS).cert;
  const cache = new CertCache(ca.cert);
  const d = new CertificateDiscovery({
    host,
    clock: net.clock,
    own,
    cache,
    localAddress: () => '10.0.0.1',
    tally: new Tally(),
  });
  const outcomes: string[] = [];
  return { net, d, outcomes, record: (o) => outcomes.push(o.ok ? 'ok' : o.reason) };
}
