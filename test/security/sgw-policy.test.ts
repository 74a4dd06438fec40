// Issue 10, the SGW's policy holes (2, 3, 4, 8) on the Figure 6 world, both engines. Each test
// plays the attacker the issue names — an Internet host, a visiting SMN with a valid certificate
// building its own packets — and shows the hole closed, plus the legitimate traffic next to it.
import { afterEach, describe, expect, it } from 'vitest';
import { Batch, createEngine, Op, Verdict, type EngineImpl } from '../../src/engine/index.js';
import { CertCache } from '../../src/keys/cache.js';
import { encodeDiscovery, DISCOVERY_PORT } from '../../src/keys/discovery.js';
import { SkipKeying, type OutboundRequest } from '../../src/keys/keying.js';
import { figure6World } from '../../src/lab/figure6-world.js';
import { F6 } from '../../src/lab/scenarios/figure6-cases.js';
import { SETTLE_MS } from '../../src/lab/scenario.js';
import { clearCaptures } from '../../src/lab/stacks.js';
import { collectEchoes, probe } from '../../src/lab/traffic.js';
import { OUTSIDE_CARE_OF, type World } from '../../src/lab/world.js';
import type { Host } from '../../src/net/types.js';
import { NodeKeys } from '../../src/roles/common/keys.js';
import { SecurityGateway } from '../../src/roles/sgw/gateway.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildIpv4, IpProto } from '../../src/wire/ipv4.js';
import { encodeRequest, MIP_PORT, ntpFromUnixMs, RequestFlag } from '../../src/wire/mobileip.js';
import { IPPROTO_SKIP, NSID_IPV4, NSID_NONE } from '../../src/wire/skip.js';
import { buildUdpDatagram, parseUdpDatagram } from '../../src/wire/udp.js';

process.env.MIPSEC_NATIVE = '1';
/** The registration lifetime the lab's SMN asks for and its HA grants, seconds. */
const LIFETIME_S = 600;
/** The lab's MN-HA key (world.ts default), which the attacker, as the SMN, holds. */
const MN_HA = { spi: 0x1000, key: new Uint8Array(16).fill(0x5a) };
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

function udp(src: string, dst: string, srcPort: number, dstPort: number, payload: Uint8Array): Uint8Array {
  return buildUdpDatagram({ src: ipToU32(src), dst: ipToU32(dst), srcPort, dstPort }, payload);
}

function ipip(src: string, dst: string, inner: Uint8Array): Uint8Array {
  return buildIpv4({ protocol: IpProto.IPIP, src: ipToU32(src), dst: ipToU32(dst) }, inner);
}

/** SGW0 restarted: a new role and engine on the same host, with the same identity and certificates, and no state. */
function restartSgw0(w: World, impl: EngineImpl): SecurityGateway {
  const identity = w.identities.get(`sgw:${F6.sgw0}`)!;
  const kept = { ...identity, secretKey: identity.secretKey.slice() }; // close() wipes the key it was given
  w.sgws.get('sgw0')!.close();
  const nowS = Math.floor(w.network.clock.now() / 1000);
  const certs = new CertCache(w.ca.cert);
  for (const [name, id] of w.identities) if (name !== `sgw:${F6.sgw0}`) certs.add(id.cert, nowS);
  const engine = createEngine(impl);
  w.engines.push(engine);
  const sgw = new SecurityGateway({
    host: w.network.host('sgw0'),
    clock: w.network.clock,
    map: w.map,
    name: 'sgw0',
    identity: kept,
    certs,
    engine,
    keyLog: w.keyLog,
  });
  w.sgws.set('sgw0', sgw);
  return sgw;
}

/** What crossed the Internet link from SGW0 other than SKIP (i.e. in clear). */
function clearFromSgw0(w: World): number[] {
  const captures = w.network.link('internet').captures();
  return captures.filter((f) => f.from.startsWith('sgw0') && f.packet[9] !== IPPROTO_SKIP).map((f) => f.packet[9]);
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

  it('hole 2: UDP source port 1640 from the Internet reaches no inside host or port; only an answer to a request sent out', async () => {
    const w = await settled('home');
    const chx = w.network.host('chx');
    const ch0 = w.network.host('ch0');
    const atCh0 = arrivals(ch0);
    const answer = (id: number) =>
      encodeDiscovery({ type: 'notFound', id, name: { nsid: NSID_IPV4, address: ipToU32(F6.home) } });

    // From port 1640 to CH0's echo port, and a well-formed discovery answer nobody asked for: both dropped.
    chx.send(udp(F6.chx, F6.ch0, DISCOVERY_PORT, 7, new Uint8Array(32)));
    chx.send(udp(F6.chx, F6.ch0, DISCOVERY_PORT, DISCOVERY_PORT, answer(7)));
    w.network.runFor(100);
    expect(atCh0).toEqual([]);
    expect(w.sgws.get('sgw0')!.counters()).toMatchObject({ drop_policy: 2, discovery_answer_unawaited: 1 });

    // CH0 asks CHX: the answer to that request comes in, once; a replay of it does not.
    const request = encodeDiscovery({ type: 'request', id: 9, name: { nsid: NSID_IPV4, address: ipToU32(F6.home) } });
    ch0.send(udp(F6.ch0, F6.chx, DISCOVERY_PORT, DISCOVERY_PORT, request));
    w.network.runFor(100);
    for (let i = 0; i < 2; i++) chx.send(udp(F6.chx, F6.ch0, DISCOVERY_PORT, DISCOVERY_PORT, answer(9)));
    w.network.runFor(100);
    expect(atCh0).toEqual([DISCOVERY_PORT]);
    expect(w.sgws.get('sgw0')!.counters().discovery_answer_unawaited).toBe(2);
  });

  it("hole 3: a datagram under only a visiting SMN's Next-hop AH is delivered only from its own addresses, never IP-in-IP", async () => {
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

  it("hole 3: the home SGW refuses its own SMN's datagram under only a Next-hop AH (code 5, §3.2 conflict check)", async () => {
    const w = await settled('outside');
    bad = attacker(w, impl);
    const atCh0 = arrivals(w.network.host('ch0'));
    w.smnHost.send(bad.nextHop(OUTSIDE_CARE_OF, F6.sgw0, probe(F6.home, F6.ch0, 1, 32, 41004)), { bypassHooks: true });
    w.network.runFor(200);
    expect(atCh0).toEqual([]);
    expect(w.sgws.get('sgw0')!.counters()['end-end-conflict']).toBe(1);
  });

  it("hole 4: one End-End packet with a spoofed outer source does not make the SGW encrypt a host's traffic to the SMN", async () => {
    const w = await settled('outside');
    bad = attacker(w, impl);
    // The SMN claims CH1's address as its outer source; the HA's binding says it is at its real care-of address.
    w.smnHost.send(bad.endEnd(F6.ch1, F6.sgw0, probe(F6.home, F6.ch0, 1, 32, 41005)), { bypassHooks: true });
    w.network.runFor(200);
    // CH0's traffic to CH1 still goes through the VPN to SGW1 (not to the SMN's key) and CH1 answers.
    const echoes = collectEchoes(w.network.host('ch0'));
    w.network.host('ch0').send(probe(F6.ch0, F6.ch1, 2));
    w.network.runFor(SETTLE_MS);
    expect(echoes.seqs).toEqual([2]);
    const sgw0 = w.sgws.get('sgw0')!;
    expect(sgw0.knownCareOfs()).toEqual(new Map([[OUTSIDE_CARE_OF, F6.home]]));
    // The SMN stops renewing: its care-of address is forgotten with the binding's lifetime.
    w.smn.registration.stop();
    w.network.runFor(LIFETIME_S * 1000);
    expect(sgw0.knownCareOfs()).toEqual(new Map());
  });

  it('hole 4: a care-of address the HA accepts never shadows a host the map names', async () => {
    const w = await settled('outside');
    bad = attacker(w, impl);
    // The SMN registers CH1's address as its care-of address: a valid MN-HA authenticator, the outer source spoofed to match.
    const addresses = { homeAddress: ipToU32(F6.home), homeAgent: ipToU32(F6.ha), careOf: ipToU32(F6.ch1) };
    const identification = ntpFromUnixMs(w.network.clock.now());
    const request = encodeRequest({ flags: RequestFlag.D, lifetime: LIFETIME_S, ...addresses, identification }, MN_HA);
    const registration = udp(F6.ch1, F6.ha, MIP_PORT, MIP_PORT, request);
    w.smnHost.send(bad.endEnd(F6.ch1, F6.sgw0, registration), { bypassHooks: true });
    w.network.runFor(200);
    expect(w.ha.bindings().map((b) => b.careOf)).toEqual([F6.ch1]);
    const sgw0 = w.sgws.get('sgw0')!;
    expect(sgw0.knownCareOfs()).toEqual(new Map());
    expect(sgw0.counters().careof_refused_shadow).toBe(1);
    // The HA's tunnel to CH1 is not sent to CH1 encrypted for the SMN, nor in clear.
    clearCaptures(w.network);
    w.network.host('ch0').send(probe(F6.ch0, F6.home, 3));
    w.network.runFor(SETTLE_MS);
    expect(
      w.network
        .link('sgw1-net')
        .captures()
        .filter((f) => f.from.startsWith('sgw1')),
    ).toEqual([]);
    expect(sgw0.counters().drop_home_unprotected).toBe(1);
  });

  it("hole 8: after SGW0 restarts, the HA's tunnel to an away SMN is dropped, never sent in clear, until it registers again", async () => {
    const w = await settled('outside');
    const sgw0 = restartSgw0(w, impl);
    clearCaptures(w.network);
    const echoes = collectEchoes(w.network.host('ch0'));
    w.network.host('ch0').send(probe(F6.ch0, F6.home, 1));
    w.network.runFor(SETTLE_MS);
    expect(echoes.seqs).toEqual([]);
    expect(clearFromSgw0(w)).toEqual([]);
    expect(sgw0.counters().drop_home_unprotected).toBeGreaterThanOrEqual(1);

    // The SMN's next registration (at 80 % of its lifetime) teaches SGW0 its care-of address again.
    w.network.runFor(LIFETIME_S * 900);
    expect(sgw0.knownCareOfs()).toEqual(new Map([[OUTSIDE_CARE_OF, F6.home]]));
    w.network.host('ch0').send(probe(F6.ch0, F6.home, 2));
    w.network.runFor(SETTLE_MS);
    expect(echoes.seqs).toEqual([2]);
    expect(clearFromSgw0(w)).toEqual([]);
  });
});
