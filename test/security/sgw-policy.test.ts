// Issue 10, the SGW's policy holes (2, 3, 4, 8) on the Figure 6 world, both engines. Each test
// plays the attacker the issue names — an Internet host, a visiting SMN with a valid certificate
// building its own packets — and shows the hole closed, plus the legitimate traffic next to it.
import { afterEach, describe, expect, it } from 'vitest';
import { Batch, createEngine, Op, Verdict, type EngineImpl } from '../../src/engine/index.js';
import { CertCache } from '../../src/keys/cache.js';
import { SkipKeying, type OutboundRequest } from '../../src/keys/keying.js';
import { figure6World } from '../../src/lab/figure6.js';
import { F6 } from '../../src/lab/scenarios/figure6.js';
import { SETTLE_MS } from '../../src/lab/scenario.js';
import { probe } from '../../src/lab/traffic.js';
import { OUTSIDE_CARE_OF, type World } from '../../src/lab/world.js';
import type { Host } from '../../src/net/types.js';
import { NodeKeys } from '../../src/roles/common/keys.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildIpv4, IpProto } from '../../src/wire/ipv4.js';
import { NSID_NONE } from '../../src/wire/skip.js';
import { parseUdpDatagram } from '../../src/wire/udp.js';

process.env.MIPSEC_NATIVE = '1';
const SUITE = { esp: 'aes128gcm', ah: 'gmac-aes128', coverage: 'headers' } as const;

/** Source ports of the UDP datagrams `host` is handed (its stack, not the link). */
function arrivals(host: Host): number[] {
  const ports: number[] = [];
  host.onDeliver((packet) => {
    const udp = parseUdpDatagram(packet);
    if (udp.ok) ports.push(udp.udp.srcPort);
  });
  return ports;
}

/** The visiting SMN as an attacker: its own certificate and key, packets built outside its role. */
function attacker(w: World, impl: EngineImpl) {
  const nowS = () => Math.floor(w.network.clock.now() / 1000);
  const certs = new CertCache(w.ca.cert);
  for (const sgw of w.map.sgws) certs.add(w.identities.get(`sgw:${sgw.outside}`)!.cert, nowS());
  const engine = createEngine(impl);
  const smn = w.identities.get(`smn:${F6.home}`)!;
  // A copy: closing the attacker's keying wipes its key, which the world's SMN still uses.
  const identity = { ...smn, secretKey: smn.secretKey.slice() };
  const keys = new NodeKeys(new SkipKeying({ identity, certs, now: nowS }), engine);
  const seal = (req: Omit<OutboundRequest, 'peer'>, datagram: Uint8Array): Uint8Array => {
    const sa = keys.outbound({ ...req, peer: { nsid: NSID_NONE, address: ipToU32(req.dst) } });
    if (!sa.ok) throw new Error(sa.message);
    const batch = new Batch({ capacity: 1 });
    batch.push(req.role === 'end' ? Op.ENCAP : Op.WRAP, datagram, sa.id, 0);
    engine.process(batch);
    const r = batch.result(0);
    if (r.verdict !== Verdict.FORWARD) throw new Error(`attacker's ${req.role} layer: verdict ${r.verdict}`);
    return r.packet.slice();
  };
  return {
    /** `datagram` inside only a Next-hop AH for `sgw`, from `src`. */
    nextHop: (src: string, sgw: string, datagram: Uint8Array) =>
      seal({ role: 'nexthop', src, dst: sgw, ah: SUITE.ah, coverage: SUITE.coverage }, datagram),
    /** `datagram` inside an End-End layer for `sgw`, with the outer source `src` it chooses. */
    endEnd: (src: string, sgw: string, datagram: Uint8Array) =>
      seal({ role: 'end', src, dst: sgw, esp: SUITE.esp, ah: SUITE.ah }, datagram),
    close: () => {
      keys.close();
      engine.close();
    },
  };
}

function ipip(src: string, dst: string, inner: Uint8Array): Uint8Array {
  return buildIpv4({ protocol: IpProto.IPIP, src: ipToU32(src), dst: ipToU32(dst) }, inner);
}

describe.each(['native', 'ts'] as const)('SGW policy holes (issue 10) on the %s engine', (impl) => {
  let world: World | undefined;
  let bad: ReturnType<typeof attacker> | undefined;
  afterEach(() => {
    bad?.close();
    bad = undefined;
    world?.close();
    world = undefined;
  });

  async function settled(where: string, careOf?: string): Promise<World> {
    world = await figure6World({ engine: impl });
    world.place(where, careOf);
    world.network.runFor(SETTLE_MS);
    return world;
  }

  it('hole 3: a datagram under only a visiting SMN\'s Next-hop AH is delivered only from its own addresses, never IP-in-IP', async () => {
    const w = await settled('sgw1');
    bad = attacker(w, impl);
    const atCh1 = arrivals(w.network.host('ch1'));
    const send = (inner: Uint8Array) => w.smnHost.send(bad!.nextHop(F6.coa1, F6.sgw1, inner), { bypassHooks: true });

    send(probe(F6.ch2, F6.ch1, 1, 32, 41001)); // someone else's source
    send(ipip(F6.coa1, F6.sgw1, probe(F6.home, F6.ch1, 2, 32, 41002))); // a tunnel under the Next-hop layer
    w.network.runFor(200);
    expect(atCh1).toEqual([]);
    expect(w.sgws.get('sgw1')!.counters()).toMatchObject({ drop_spoofed_source: 1, drop_nexthop_ipip: 1 });

    send(probe(F6.coa1, F6.ch1, 3, 32, 41003)); // its own care-of address: delivered
    w.network.runFor(200);
    expect(atCh1).toEqual([41003]);
  });

  it('hole 3: the home SGW refuses its own SMN\'s datagram under only a Next-hop AH (code 5, §3.2 conflict check)', async () => {
    const w = await settled('outside');
    bad = attacker(w, impl);
    const atCh0 = arrivals(w.network.host('ch0'));
    w.smnHost.send(bad.nextHop(OUTSIDE_CARE_OF, F6.sgw0, probe(F6.home, F6.ch0, 1, 32, 41004)), { bypassHooks: true });
    w.network.runFor(200);
    expect(atCh0).toEqual([]);
    expect(w.sgws.get('sgw0')!.counters()['end-end-conflict']).toBe(1);
  });

});
