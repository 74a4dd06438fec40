// Issue 10, hole 6: plain IP-in-IP whose outer source claims to be the home agent must not reach the SMN's home
// stack; only the HA's tunnel that arrives inside an authenticated End-End layer is opened. Figure 6 world, the SMN
// visiting Site 1, both engines.
import { afterEach, describe, expect, it } from 'vitest';
import { figure6World } from '../../src/lab/figure6-world.js';
import { F6 } from '../../src/lab/scenarios/figure6-cases.js';
import { SETTLE_MS } from '../../src/lab/scenario.js';
import { collectEchoes, ECHO_PORT, PROBE_PORT, probe } from '../../src/lab/traffic.js';
import type { World } from '../../src/lab/world.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildIpv4, IpProto } from '../../src/wire/ipv4.js';
import { buildUdpDatagram } from '../../src/wire/udp.js';

process.env.MIPSEC_NATIVE = '1';

describe.each(['native', 'ts'] as const)('hole 6: spoofed home-agent tunnel on the %s engine', (engine) => {
  let world: World | undefined;
  afterEach(() => world?.close());

  it('hole 6: bare IP-in-IP "from the HA" to the care-of address is dropped, the HA\'s tunnel inside End-End delivers', async () => {
    world = await figure6World({ engine });
    const w = world;
    w.place('sgw1');
    w.network.runFor(SETTLE_MS);
    const echoes = collectEchoes(w.smnHost);
    // An "echo reply" from CH0 to the home address, tunnelled as the HA would, sent by an attacker next to the SMN.
    const payload = new Uint8Array(32);
    new DataView(payload.buffer).setUint32(0, 666);
    const inner = buildUdpDatagram(
      { src: ipToU32(F6.ch0), dst: ipToU32(F6.home), srcPort: ECHO_PORT, dstPort: PROBE_PORT },
      payload,
    );
    const spoofed = buildIpv4({ src: ipToU32(F6.ha), dst: ipToU32(F6.coa1), protocol: IpProto.IPIP, ttl: 64 }, inner);
    w.addHost('mallory', '10.1.0.66').send(spoofed, { bypassHooks: true });
    w.network.runFor(50);
    expect(echoes.seqs).not.toContain(666);
    expect(w.smn.counters()).toMatchObject({ drop_tunnel_unauthenticated_tunnel: 1 });
    // The real reply comes back the same way (CH0 → home address → HA → IP-in-IP inside SGW0's End-End layer).
    w.smn.send(probe(F6.home, F6.ch0, 7));
    w.network.runFor(SETTLE_MS);
    expect(echoes.seqs).toEqual([7]);
  });
});
