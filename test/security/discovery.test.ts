// Issue 10 hole 10: certificate discovery must not flood or amplify. Forged SKIP headers (random
// MKIDs, spoofed sources) neither fill the lookup table nor draw requests to the spoofed source, and
// answers are rate-limited and never larger than the request. Both engines, on the memory network.
import { afterEach, describe, expect, it } from 'vitest';
import { SkipAlg } from '../../src/engine/types.js';
import { skipCounter } from '../../src/keys/derive.js';
import { DISCOVERY_PORT, DISCOVERY_REQUEST_BYTES, encodeDiscovery } from '../../src/keys/discovery.js';
import { figure6World } from '../../src/lab/figure6-world.js';
import { F6 } from '../../src/lab/scenarios/figure6-cases.js';
import { SETTLE_MS } from '../../src/lab/scenario.js';
import { collectEchoes, probe } from '../../src/lab/traffic.js';
import type { World } from '../../src/lab/world.js';
import type { Host } from '../../src/net/types.js';
import { lanDiscovery } from '../roles/discovery-fixture.js';
import { ipToU32, u32ToIp } from '../../src/wire/addr.js';
import { writeAhHeader } from '../../src/wire/ah.js';
import { buildIpv4, IpProto } from '../../src/wire/ipv4.js';
import { encodeSkipHeader, IPPROTO_SKIP, NSID_IPV4, NSID_NONE } from '../../src/wire/skip.js';
import { buildUdpDatagram, parseUdpDatagram } from '../../src/wire/udp.js';

process.env.MIPSEC_NATIVE = '1';

let seed = 12345;
const random = () => (seed = (seed * 1103515245 + 12345) >>> 0);

/** A SKIP + AH packet from `src` naming SMN `mkid` as its sender, with a made-up key and ICV. */
function forgedSkip(src: number, dst: string, mkid: number, nowMs: number): Uint8Array {
  const skip = encodeSkipHeader({
    srcNsid: NSID_IPV4,
    dstNsid: NSID_NONE,
    srcMkid: mkid,
    nextHeader: IpProto.AH,
    n: skipCounter(nowMs / 1000),
    kijAlg: SkipAlg.kij['aes256-kw'],
    cryptAlg: 0,
    macAlg: SkipAlg.mac['gmac-aes128'],
    compAlg: 0,
    wrappedKp: new Uint8Array(40).fill(random() & 0xff),
  });
  const ah = new Uint8Array(36 + 28);
  writeAhHeader(ah, 0, { nextHeader: IpProto.UDP, length: 36, spi: 1, seq: 1 });
  const payload = new Uint8Array(skip.length + ah.length);
  payload.set(skip);
  payload.set(ah, skip.length);
  return buildIpv4({ src, dst: ipToU32(dst), protocol: IPPROTO_SKIP }, payload);
}

/** An Internet address that is nobody's (198.18.100.0/22), a new one each call. */
const spoofedSource = () => ipToU32('198.18.100.0') + (random() % 1024);
/** A home address in site 0 (asks its SGW) or anywhere at all (nobody vouches). */
const randomMkid = (i: number) => (i % 2 === 0 ? ipToU32('10.0.0.0') + (random() & 0xffff) : random());

/** Discovery datagrams (UDP 1640) `from` sent, as [destination, UDP payload length]. */
function discoverySent(world: World, link: string, from: string): [string, number][] {
  return world.network
    .link(link)
    .captures()
    .flatMap((f) => {
      const u = parseUdpDatagram(f.packet);
      const ours = u.ok && u.udp.src === ipToU32(from) && u.udp.srcPort === DISCOVERY_PORT;
      return ours ? [[u32ToIp(u.udp.dst), u.udp.payload.length] as [string, number]] : [];
    });
}

describe.each(['native', 'ts'] as const)('hole 10: certificate discovery on the %s engine', (engine) => {
  let world: World | undefined;
  afterEach(() => world?.close());

  async function minimalWorld(): Promise<{ w: World; attacker: Host }> {
    world = await figure6World({ engine, certificates: 'minimal' });
    return { w: world, attacker: world.addHost('attacker', '198.18.9.77') };
  }

  it('hole 10: one forged SKIP header does not make the SGW send discovery requests to the spoofed source', async () => {
    const { w, attacker } = await minimalWorld();
    const spoofed = '198.18.100.7';
    attacker.send(forgedSkip(ipToU32(spoofed), F6.sgw1, ipToU32('10.1.0.200'), w.network.clock.now()), {
      bypassHooks: true,
    });
    attacker.send(forgedSkip(ipToU32(spoofed), F6.sgw1, ipToU32('10.0.0.200'), w.network.clock.now()), {
      bypassHooks: true,
    });
    attacker.send(forgedSkip(ipToU32(spoofed), F6.sgw1, ipToU32('192.0.2.9'), w.network.clock.now()), {
      bypassHooks: true,
    });
    w.network.runFor(3000);
    const sent = discoverySent(w, 'internet', F6.sgw1);
    expect(sent.filter(([to]) => to === spoofed)).toEqual([]);
    // A name in SGW1's own site from outside, and a name no SGW protects: nobody to ask; a home address in site 0: its SGW.
    expect(w.sgws.get('sgw1')!.counters().drop_discovery_no_authority).toBe(2);
    expect(sent.every(([to]) => to === F6.sgw0)).toBe(true);
  });

  it('hole 10: a flood of forged SKIP headers, random MKIDs, many sources, does not stop a real visitor keying, registering', async () => {
    const { w, attacker } = await minimalWorld();
    // 3,000 forged packets a second, three each millisecond, before and while the SMN arrives in site 1 with no certificate known to SGW1.
    const flood = (ms: number) => {
      for (let t = 0; t < ms; t++) {
        for (let i = 0; i < 3; i++) {
          attacker.send(forgedSkip(spoofedSource(), F6.sgw1, randomMkid(i), w.network.clock.now()), {
            bypassHooks: true,
          });
        }
        w.network.runFor(1);
      }
    };
    flood(1000);
    w.place('sgw1');
    flood(3000);
    expect(w.smn.registration.state).toBe('registered');
    // The visitor's own lookup was never refused for a table full of forged names (code 0 back to it, before).
    expect(w.smn.counters().failure_code0).toBeUndefined();
    const c = w.sgws.get('sgw1')!.counters();
    expect(c.drop_discovery_busy).toBeUndefined();
    expect(c.discovery_certificate_added).toBeGreaterThanOrEqual(1);
    expect(c.drop_discovery_busy_asked).toBeGreaterThan(0);
    // Requests went only to SGW0 (for site-0 names) and to the visitor itself (on SGW1's inside), never to a spoofed source.
    expect(new Set(discoverySent(w, 'internet', F6.sgw1).map(([to]) => to))).toEqual(new Set([F6.sgw0]));
    const echoes = collectEchoes(w.smnHost);
    w.smn.send(probe(F6.home, F6.ch0, 5));
    w.network.runFor(SETTLE_MS);
    expect(echoes.seqs).toContain(5);
  });

  it('hole 10: answers are rate-limited per requester and overall, and never larger than the request', async () => {
    const { w, attacker } = await minimalWorld();
    const ask = (id: number) =>
      encodeDiscovery({ type: 'request', id, name: { nsid: NSID_NONE, address: ipToU32(F6.sgw1) } });
    const request = (src: string, id: number, payload = ask(id)) => {
      const datagram = buildUdpDatagram(
        { src: ipToU32(src), dst: ipToU32(F6.sgw1), srcPort: 5000, dstPort: DISCOVERY_PORT },
        payload,
      );
      attacker.send(datagram, { bypassHooks: true });
    };
    // The old 11-byte request drew a 177-byte certificate (5.3×): an unpadded request gets nothing.
    request('198.18.9.77', 1, ask(1).subarray(0, 11));
    w.network.runFor(10);
    expect(discoverySent(w, 'internet', F6.sgw1)).toEqual([]);
    for (let i = 0; i < 50; i++) request('198.18.9.77', i);
    w.network.runFor(10);
    const toOne = discoverySent(w, 'internet', F6.sgw1);
    expect(toOne).toHaveLength(4);
    for (let i = 0; i < 50; i++) request(`198.18.101.${i}`, i);
    w.network.runFor(10);
    const all = discoverySent(w, 'internet', F6.sgw1);
    expect(all.length - toOne.length).toBe(12);
    expect(all.every(([, bytes]) => bytes <= DISCOVERY_REQUEST_BYTES)).toBe(true);
    const limited = { discovery_answer_rate_limited: 46, discovery_answer_global_rate_limited: 38 };
    expect(w.sgws.get('sgw1')!.counters()).toMatchObject({ discovery_bad_length: 1, ...limited });
  });
});

describe('hole 10: lookups in flight are capped per source and per node asked', () => {
  it('one source holds at most 4 lookups and one asked node 8; other sources and the node’s own lookups still get theirs', () => {
    const { d, outcomes, record } = lanDiscovery();
    const name = (i: number) => ({ nsid: NSID_IPV4 as 1, address: 0x0a010000 + i });
    for (let i = 0; i < 10; i++) d.fetch(name(i), `10.0.0.${100 + i}`, record, '198.18.100.1');
    expect(outcomes).toEqual(Array(6).fill('discovery_busy_source'));
    for (let i = 0; i < 30; i++) d.fetch(name(100 + i), '198.18.0.1', record, `198.18.100.${10 + i}`);
    expect(outcomes.filter((o) => o === 'discovery_busy_asked')).toHaveLength(22);
    // Another source, another node asked, and the node's own lookup of an SGW asked before: all still start.
    const before = outcomes.length;
    d.fetch(name(999), '10.1.0.100', record, '10.1.0.100');
    d.fetch({ nsid: 0, address: ipToU32('198.18.0.1') }, '198.18.0.1', record);
    expect(outcomes).toHaveLength(before);
    d.close();
  });
});
