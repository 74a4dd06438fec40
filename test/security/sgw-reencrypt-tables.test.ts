// §3.3 re-encryption in the engine (SgwTables' REENCRYPT_TABLE, selectorMiss { outbound }): what the table seals for
// an SMN's End-End SA must be exactly what the policy (decideEnd) decides for that datagram — the same End-End SGW
// and the same Next-hop layer — and everything else must be left to the policy (punted). Checked on every SGW of the
// Figure 6, Figure 1 (nested) and chain maps, for every SMN home address and a spread of destinations: map
// addresses, both ends of every protected prefix, outside hosts, care-of addresses inside other sites.
process.env.MIPSEC_NATIVE = '1';
import { afterEach, describe, expect, it } from 'vitest';
import { Op, Verdict, type Engine } from '../../src/engine/index.js';
import type { OutboundRequest } from '../../src/keys/keying.js';
import type { SkipName } from '../../src/keys/names.js';
import { figure6Map } from '../../src/lab/figure6-world.js';
import { chainMap, figure1Map } from '../../src/lab/topologies.js';
import { VirtualClock } from '../../src/net/clock.js';
import { decide, type Decision, type EndPeer, type SgwPlace } from '../../src/policy/sgw.js';
import { Tally } from '../../src/roles/common/counters.js';
import type { NodeKeys, SaLookup } from '../../src/roles/common/keys.js';
import { REENCRYPT_TABLE, SgwTables } from '../../src/roles/sgw/tables.js';
import { toU32, type Sgw, type TopologyMap } from '../../src/topology/map.js';
import { ipToU32, u32ToIp } from '../../src/wire/addr.js';
import { NSID_IPV4, NSID_NONE } from '../../src/wire/skip.js';
import { datagram, endSaPair, engineWith, nexthopSaPair, runOne } from '../engine/fixtures.js';

const opened: Engine[] = [];
afterEach(() => {
  for (const e of opened.splice(0)) e.close();
});

const SMN_OUTSIDE = '198.18.7.100';

/** Addresses worth asking about in `map`: its own, both ends of every prefix, outside hosts. */
function destinations(map: TopologyMap): number[] {
  const out = new Set<number>([ipToU32('8.8.8.8'), ipToU32('198.18.9.10'), ipToU32(SMN_OUTSIDE)]);
  for (const s of map.sgws) {
    out.add(toU32(s.inside));
    out.add(toU32(s.outside));
    for (const p of s.prefixes) {
      const size = p.length === 32 ? 1 : 2 ** (32 - p.length);
      for (const o of [0, 1, 2, 20, 100, 130, 200, size - 2, size - 1]) if (o < size) out.add((p.network + o) >>> 0);
    }
  }
  for (const ha of map.homeAgents) {
    out.add(toU32(ha.address));
    for (const p of ha.serves) out.add(p.network);
  }
  for (const h of map.hosts) out.add(toU32(h.address));
  return [...out];
}

function check(map: TopologyMap, self: Sgw, home: number, careOf?: { at: number; home: number }) {
  const ids = new Map<string, number>();
  const sas = map.sgws.flatMap((s, i) => {
    ids.set(`end ${s.name}`, 100 + i);
    ids.set(`nexthop ${s.name}`, 200 + i);
    return [
      endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 100 + i, src: self.outside, dst: s.outside }).out,
      nexthopSaPair({ alg: 'gmac-aes128', mode: 'spi', id: 200 + i, src: self.outside, dst: s.outside }).out,
    ];
  });
  ids.set('end smn', 99);
  sas.push(endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 99, src: self.outside, dst: SMN_OUTSIDE }).out);
  const engine = engineWith('ts', sas);
  opened.push(engine);
  const bindings = new Map(careOf ? [[careOf.at, careOf.home]] : []);
  const place: SgwPlace = { map, self, careOfs: bindings };
  const keys = { outbound: (req: OutboundRequest): SaLookup => ({ ok: true, id: ids.get(req.dst)! }), retire() {} };
  const requests = {
    end: (end: EndPeer) => ({ dst: end.kind === 'sgw' ? `end ${end.sgw.name}` : 'end smn' }) as OutboundRequest,
    nextHop: (peer: Sgw) => ({ dst: `nexthop ${peer.name}` }) as OutboundRequest,
  };
  const tables = new SgwTables(
    place,
    engine,
    keys as unknown as NodeKeys,
    requests,
    { inside: 1, outside: [2] },
    new VirtualClock(0),
    new Tally(),
  );
  const peer: SkipName = { nsid: NSID_IPV4, address: home };
  const endView = (dst: number): Decision =>
    decide(place, {
      arrivedOn: 'outside',
      layers: [{ kind: 'end', ip: { src: SMN_OUTSIDE, dst: self.outside }, skipSrc: peer, auth: 'verified' }],
      inner: { src: home, dst },
    });
  const own = map.homeAgents.find((ha) => ha.sgw === self);
  const dsts = destinations(map);
  // Learn what the gateway learns: re-encryptions (SecurityGateway.compileReencrypt) and inside traffic from one of its hosts.
  for (const dst of dsts) {
    const d = endView(dst);
    if (d.action === 'decap' && d.then.kind === 'reencap') tables.learnReencrypt(dst, d.then.end, d.then.nextHop);
    if (own) {
      const plain = decide(place, { arrivedOn: 'inside', layers: [], inner: { src: toU32(own.address), dst } });
      if (plain.action === 'encap') tables.learnProtect(dst, plain.end, plain.nextHop);
    }
  }
  tables.refresh();
  let sealed = 0;
  for (const dst of dsts) {
    const r = runOne(engine, Op.OUTBOUND, datagram(100, { src: u32ToIp(home), dst: u32ToIp(dst) }), REENCRYPT_TABLE);
    const what = `${map.name} ${self.name} SMN ${u32ToIp(home)} → ${u32ToIp(dst)}`;
    if (r.verdict !== Verdict.FORWARD) {
      expect([what, r.verdict]).toEqual([what, Verdict.PUNT]);
      continue;
    }
    sealed++;
    const d = endView(dst);
    if (d.action !== 'decap' || d.then.kind !== 'reencap' || d.then.end.kind !== 'sgw')
      throw new Error(`${what}: the table seals it, the policy says ${d.action}: ${d.reason}`);
    const hop = d.then.nextHop ?? d.then.end.sgw;
    expect([what, r.sa, u32ToIp(r.nexthop)]).toEqual([what, ids.get(`end ${d.then.end.sgw.name}`), hop.outside]);
  }
  // The inside table, with what the re-encryptions taught it: for a host of this SGW, only what decidePlain protects.
  const host = self.prefixes.map((p) => (p.network + 20) >>> 0).find((a) => map.protectingSgw(a) === self);
  for (const dst of host === undefined ? [] : dsts) {
    const r = runOne(engine, Op.OUTBOUND, datagram(100, { src: u32ToIp(host!), dst: u32ToIp(dst) }), 1);
    if (r.verdict !== Verdict.FORWARD || r.nexthop === dst) continue;
    const what = `${map.name} ${self.name} inside ${u32ToIp(host!)} → ${u32ToIp(dst)}`;
    const d = decide(place, { arrivedOn: 'inside', layers: [], inner: { src: host!, dst } });
    if (d.action !== 'encap') throw new Error(`${what}: the inside table seals it, the policy says ${d.action}`);
    if (d.end.kind === 'smn') expect([what, r.sa]).toEqual([what, ids.get('end smn')]);
    else {
      const hop = d.nextHop ?? d.end.sgw;
      expect([what, r.sa, u32ToIp(r.nexthop)]).toEqual([what, ids.get(`end ${d.end.sgw.name}`), hop.outside]);
    }
  }
  // What the SA lets the table see: only its home address as the source.
  expect(tables.selectorsFor(peer).src).toEqual([`${u32ToIp(home)}/32`]);
  expect(tables.selectorMissFor(peer)).toEqual({ outbound: REENCRYPT_TABLE });
  return sealed;
}

describe('SGW re-encryption table = the policy’s §3.3 decision', () => {
  it('on every SGW of three maps, for every SMN, the table seals only what decideEnd re-encrypts, the same way', async () => {
    let sealed = 0;
    for (const map of [await figure6Map(), figure1Map(), chainMap(4), chainMap(5)]) {
      const homes = map.homeAgents.flatMap((ha) => ha.serves.map((p) => p.network));
      for (const self of map.sgws) for (const home of homes) sealed += check(map, self, home);
    }
    expect(sealed, 'some destinations are sealed at all').toBeGreaterThan(10);
  });

  it("a care-of address inside another SGW's site is punted (the policy protects to the SMN there), not sealed to that SGW", async () => {
    const map = await figure6Map();
    const sgw0 = map.sgw('sgw0')!;
    const home = ipToU32('10.0.0.100');
    check(map, sgw0, home, { at: ipToU32('10.1.0.100'), home });
  });

  it('an SGW peer and an SMN no HA serves keep selectorMiss punt', async () => {
    const map = await figure6Map();
    const tables = new SgwTables(
      { map, self: map.sgw('sgw0')! },
      engineWith('ts', []),
      {} as NodeKeys,
      { end: () => ({}) as never, nextHop: () => ({}) as never },
      { inside: 1, outside: [2] },
      new VirtualClock(0),
      new Tally(),
    );
    expect(tables.selectorMissFor({ nsid: NSID_NONE, address: ipToU32('198.18.1.1') })).toBe('punt');
    expect(tables.selectorMissFor({ nsid: NSID_IPV4, address: ipToU32('10.9.0.1') })).toBe('punt');
  });
});
