// SgwTables (src/roles/sgw/tables.ts): what an SGW compiles into its engine's OUTBOUND tables answers exactly the
// packets the policy would answer the same way, on both engines; everything else is punted to the policy.
process.env.MIPSEC_NATIVE = '1';
import { afterEach, describe, expect, it } from 'vitest';
import { Op, Reason, Verdict, type Engine, type SaDesc } from '../../src/engine/index.js';
import { figure6Map } from '../../src/lab/figure6-world.js';
import { F6 } from '../../src/lab/scenarios/figure6-cases.js';
import { figure4Map } from '../../src/lab/topologies.js';
import { VirtualClock } from '../../src/net/clock.js';
import { Tally } from '../../src/roles/common/counters.js';
import type { NodeKeys, SaLookup } from '../../src/roles/common/keys.js';
import { NEXTHOP_PLAIN_TABLE, REENCRYPT_TABLE, SgwTables, subtractPrefixes } from '../../src/roles/sgw/tables.js';
import type { SgwPlace } from '../../src/policy/sgw.js';
import { ipToU32, parsePrefix } from '../../src/wire/addr.js';
import { buildIpv4, IpProto } from '../../src/wire/ipv4.js';
import { NSID_IPV4, NSID_NONE } from '../../src/wire/skip.js';
import { ADDR, IMPLS, datagram, endSaPair, engineWith, runOne } from '../engine/fixtures.js';

const end = endSaPair({
  suite: 'aes128gcm',
  mode: 'skip',
  id: 21,
  src: ADDR.smnCoa,
  dst: ADDR.sgw0,
  mkid: { src: ADDR.smnHome },
});

const INSIDE = 1;
const OUTSIDE = 2;
const opened: Engine[] = [];
afterEach(() => {
  for (const e of opened.splice(0)) e.close();
});

/** NodeKeys as SgwTables uses it: outbound() answers the SA id `current`, rotating when told to. */
class FakeKeys {
  current: number;
  rotateTo?: number;
  retired: number[] = [];
  constructor(
    private readonly engine: Engine,
    first: SaDesc,
  ) {
    this.current = first.id;
  }
  outbound(_req: unknown, retired?: number[]): SaLookup {
    if (this.rotateTo !== undefined) {
      retired?.push(this.current);
      this.current = this.rotateTo;
      this.rotateTo = undefined;
    }
    return { ok: true, id: this.current };
  }
  retire(id: number): void {
    // Retired only after the tables that named it were replaced: OUTBOUND must not meet it any more.
    this.retired.push(id);
    this.engine.removeSa(id);
  }
}

async function setUp(impl: (typeof IMPLS)[number], name = 'sgw0') {
  const map = await figure6Map();
  const self = map.sgw(name)!;
  const clock = new VirtualClock(0);
  const first = endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 11, src: F6.sgw0, dst: F6.sgw1 }).out;
  const second = endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 12, src: F6.sgw0, dst: F6.sgw1 }).out;
  const engine = engineWith(impl, [first, second]);
  opened.push(engine);
  const keys = new FakeKeys(engine, first);
  const requests = { end: () => ({}) as never, nextHop: () => ({}) as never };
  // Tables over this engine and clock for a place a test varies (with setUp's keys unless it brings its own).
  const tablesFor = (place: Omit<SgwPlace, 'map' | 'self'>, withKeys: unknown = keys) =>
    new SgwTables(
      { map, self, ...place },
      engine,
      withKeys as NodeKeys,
      requests,
      { inside: INSIDE, outside: [OUTSIDE] },
      clock,
      new Tally(),
    );
  const tables = tablesFor({});
  return { map, self, engine, keys, tables, clock, tablesFor };
}

const outbound = (engine: Engine, table: number, src: string, dst: string, ttl = 64) =>
  runOne(engine, Op.OUTBOUND, datagram(200, { src, dst, ttl }), table);

describe.each(IMPLS)('SgwTables on the %s engine', (impl) => {
  it('own addresses go to INBOUND on every interface; nothing else is answered before the policy decides', async () => {
    const { engine, tables } = await setUp(impl);
    tables.refresh();
    for (const table of [INSIDE, OUTSIDE]) {
      expect(outbound(engine, table, F6.ch1, F6.sgw0)).toMatchObject({
        verdict: Verdict.PUNT,
        reason: Reason.not_ipsec,
      });
    }
    expect(outbound(engine, INSIDE, F6.ch0, F6.ch1)).toMatchObject({
      verdict: Verdict.PUNT,
      reason: Reason.policy_punt,
    });
    expect(outbound(engine, OUTSIDE, F6.chx, F6.ch0)).toMatchObject({
      verdict: Verdict.PUNT,
      reason: Reason.no_policy,
    });
  });

  it('a protect decision answers for the whole target region, only for sources this SGW protects; the HA and other sources punt', async () => {
    const { engine, tables, map } = await setUp(impl);
    tables.learnProtect(ipToU32(F6.ch1), { kind: 'sgw', sgw: map.sgw('sgw1')! }, undefined);
    tables.refresh();
    const r = outbound(engine, INSIDE, F6.ch0, '10.1.7.7');
    expect(r).toMatchObject({ verdict: Verdict.FORWARD, sa: 11, nexthop: ipToU32(F6.sgw1) });
    // The HA's tunnel to an address no binding names is the policy's (never sent on, issue 10 hole 8).
    expect(outbound(engine, INSIDE, F6.ha, F6.ch1)).toMatchObject({
      verdict: Verdict.PUNT,
      reason: Reason.policy_punt,
    });
    // A visiting SMN's home address is not ours: the policy answers with ICMP 40 (§3.2 step 1).
    expect(outbound(engine, INSIDE, F6.coa2, F6.ch1)).toMatchObject({
      verdict: Verdict.PUNT,
      reason: Reason.no_policy,
    });
    // Site 2 was not compiled: its prefix punts.
    expect(outbound(engine, INSIDE, F6.ch0, F6.ch2)).toMatchObject({
      verdict: Verdict.PUNT,
      reason: Reason.policy_punt,
    });
  });

  it('keys rotate: the tables move to the new SA before the old one is removed', async () => {
    const { engine, tables, map, keys } = await setUp(impl);
    tables.learnProtect(ipToU32(F6.ch1), { kind: 'sgw', sgw: map.sgw('sgw1')! }, undefined);
    tables.refresh();
    keys.rotateTo = 12;
    tables.refresh();
    expect(keys.retired).toEqual([11]);
    expect(outbound(engine, INSIDE, F6.ch0, F6.ch1)).toMatchObject({ verdict: Verdict.FORWARD, sa: 12 });
  });

  it('a pass to an outside host is routed with TTL - 1, learned per address and forgotten after a minute', async () => {
    const { engine, tables, clock } = await setUp(impl);
    tables.learnPass(ipToU32(F6.chx));
    tables.refresh();
    const r = outbound(engine, INSIDE, F6.ch0, F6.chx, 9);
    expect(r).toMatchObject({ verdict: Verdict.FORWARD, nexthop: ipToU32(F6.chx) });
    expect(r.packet[8]).toBe(8);
    expect(outbound(engine, INSIDE, F6.ha, F6.chx)).toMatchObject({
      verdict: Verdict.PUNT,
      reason: Reason.policy_punt,
    });
    // A SKIP layer to it is no usual IP: the policy wants a Next-hop AH for it to leave (§3.2 step 1, code 4).
    const layer = buildIpv4(
      { src: ipToU32(F6.ch0), dst: ipToU32(F6.chx), protocol: IpProto.SKIP, ttl: 9 },
      new Uint8Array(80),
    );
    expect(runOne(engine, Op.OUTBOUND, layer, INSIDE)).toMatchObject({
      verdict: Verdict.PUNT,
      reason: Reason.policy_punt,
    });
    clock.run(60_001);
    tables.refresh();
    expect(outbound(engine, INSIDE, F6.ch0, F6.chx)).toMatchObject({ verdict: Verdict.PUNT, reason: Reason.no_policy });
  });

  it('a care-of address is compiled while its binding lives, and left to the policy while a registration is in flight', async () => {
    const { engine, tables, clock, tablesFor } = await setUp(impl);
    const bindings = new Map([[ipToU32(ADDR.smnCoa), ipToU32(F6.home)]]);
    const careOfs = { get: (c: number) => bindings.get(c), has: (c: number) => bindings.has(c) };
    const t = tablesFor({ careOfs });
    t.learnProtect(ipToU32(ADDR.smnCoa), { kind: 'smn', home: F6.home, careOf: ADDR.smnCoa }, undefined);
    t.refresh();
    // The HA's tunnel to the bound care-of address is what the entry is for.
    expect(outbound(engine, INSIDE, F6.ha, ADDR.smnCoa)).toMatchObject({ verdict: Verdict.FORWARD, sa: 11 });
    // No refresh(): a suspension is in the tables at once, before the HA's reply can arrive.
    t.suspendCareOf(ipToU32(ADDR.smnCoa));
    expect(outbound(engine, INSIDE, F6.ha, ADDR.smnCoa)).toMatchObject({ verdict: Verdict.PUNT });
    t.resumeCareOf(ipToU32(ADDR.smnCoa));
    t.learnProtect(ipToU32(ADDR.smnCoa), { kind: 'smn', home: F6.home, careOf: ADDR.smnCoa }, undefined);
    bindings.clear();
    t.refresh();
    expect(outbound(engine, INSIDE, F6.ha, ADDR.smnCoa)).toMatchObject({ verdict: Verdict.PUNT });
  });
});

describe.each(IMPLS)('SgwTables outside tables under plainInbound pass (§3.5) on the %s engine', (impl) => {
  const arriving = (engine: Engine, protocol: number, dst: string) =>
    runOne(
      engine,
      Op.OUTBOUND,
      buildIpv4({ src: ipToU32(F6.chx), dst: ipToU32(dst), protocol, ttl: 9 }, new Uint8Array(40)),
      OUTSIDE,
    );

  it("TCP from outside to the region passes (TTL - 1) only when the site lets usual IP in and translates nothing; the rest stays the policy's", async () => {
    const { engine, tablesFor } = await setUp(impl);
    const make = (plainInbound: 'pass' | 'drop' | undefined, nat: boolean) => {
      const t = tablesFor({ plainInbound });
      t.natOutside = nat;
      t.refresh();
    };
    make('pass', false);
    const r = arriving(engine, IpProto.TCP, F6.home);
    expect(r).toMatchObject({ verdict: Verdict.FORWARD, nexthop: ipToU32(F6.home) });
    expect(r.packet[8]).toBe(8);
    expect(arriving(engine, IpProto.TCP, F6.ch0).verdict).toBe(Verdict.FORWARD);
    // UDP (discovery answers, registrations), ICMP (failure messages) and SKIP layers (code 4) stay with the policy.
    for (const protocol of [IpProto.UDP, IpProto.ICMP, IpProto.SKIP, IpProto.ESP, IpProto.IPIP])
      expect([protocol, arriving(engine, protocol, F6.ch0).reason]).toEqual([protocol, Reason.no_policy]);
    // Not to another SGW's network, and never in the inside table.
    expect(arriving(engine, IpProto.TCP, F6.ch1).reason).toBe(Reason.no_policy);
    expect(runOne(engine, Op.OUTBOUND, datagram(60, { src: F6.chx, dst: F6.ch0 }), INSIDE).verdict).toBe(Verdict.PUNT);
    // The SGW's own address: INBOUND, as before.
    expect(arriving(engine, IpProto.TCP, F6.sgw0).reason).toBe(Reason.not_ipsec);
    for (const [plainInbound, nat] of [
      ['drop', false],
      [undefined, false],
      ['pass', true],
    ] as const) {
      make(plainInbound, nat);
      expect([plainInbound, nat, arriving(engine, IpProto.TCP, F6.home).reason]).toEqual([
        plainInbound,
        nat,
        Reason.no_policy,
      ]);
    }
  });
});

describe.each(IMPLS)('SgwTables outside tables of an SGW that builds no VPNs (§3.4) on the %s engine', (impl) => {
  it('SKIP layers from outside to its region pass (TTL - 1), whole and readable; a VPN-routable SGW leaves them to the policy', async () => {
    const { engine, self, tablesFor } = await setUp(impl);
    const sealed = runOne(engineWith(impl, [end.out]), Op.ENCAP, datagram(100), end.out.id).packet;
    // The same layer, readdressed from an outside host to one in sgw0's region (its SKIP header is unchanged).
    const layer = buildIpv4(
      { src: ipToU32(F6.chx), dst: ipToU32(F6.home), protocol: IpProto.SKIP, ttl: 9 },
      sealed.subarray(20),
    );
    const arrive = (p: Uint8Array) => runOne(engine, Op.OUTBOUND, p, OUTSIDE);
    // This test's own map (setUp builds one per test): sgw0 as an SGW that exchanges keys with no other.
    (self as { vpnRoutable: boolean }).vpnRoutable = false;
    tablesFor({}).refresh();
    const r = arrive(layer);
    expect(r).toMatchObject({ verdict: Verdict.FORWARD, nexthop: ipToU32(F6.home) });
    expect(r.packet[8]).toBe(8);
    const unreadable = buildIpv4(
      { src: ipToU32(F6.chx), dst: ipToU32(F6.home), protocol: IpProto.SKIP, ttl: 9 },
      new Uint8Array(40),
    );
    expect(arrive(unreadable).verdict).toBe(Verdict.DROP);
    // Not to another SGW's network, nor plain datagrams, nor the SGW's own address (INBOUND).
    const elsewhere = buildIpv4(
      { src: ipToU32(F6.chx), dst: ipToU32(F6.ch1), protocol: IpProto.SKIP, ttl: 9 },
      sealed.subarray(20),
    );
    expect(arrive(elsewhere).reason).toBe(Reason.no_policy);
    expect(arrive(datagram(60, { src: F6.chx, dst: F6.home })).reason).toBe(Reason.no_policy);
    // A VPN-routable SGW asks for a Next-hop AH (the policy's code 4): nothing compiled.
    (self as { vpnRoutable: boolean }).vpnRoutable = true;
    tablesFor({}).refresh();
    expect(arrive(layer).reason).toBe(Reason.no_policy);
  });
});

describe.each(IMPLS)('SgwTables re-encryption table (§3.3) on the %s engine', (impl) => {
  it('seals toward a compiled SGW only; own addresses, care-of addresses and other SGW prefixes punt; the rest has no policy', async () => {
    const { engine, map, tablesFor } = await setUp(impl);
    const bindings = new Map<number, number>();
    const t = tablesFor({ careOfs: bindings }, new FakeKeys(engine, { id: 11 } as SaDesc));
    const reencrypt = (dst: string) => outbound(engine, REENCRYPT_TABLE, F6.home, dst);
    t.refresh();
    expect(reencrypt(F6.ch1), 'nothing learned yet').toMatchObject({
      verdict: Verdict.PUNT,
      reason: Reason.policy_punt,
    });
    t.learnReencrypt(ipToU32(F6.ch1), { kind: 'sgw', sgw: map.sgw('sgw1')! }, undefined);
    t.refresh();
    expect(reencrypt('10.1.7.7')).toMatchObject({ verdict: Verdict.FORWARD, sa: 11, nexthop: ipToU32(F6.sgw1) });
    // Learned as a decision for our own hosts too (decidePlain makes the same one).
    expect(outbound(engine, INSIDE, F6.ch0, '10.1.7.7')).toMatchObject({ verdict: Verdict.FORWARD, sa: 11 });
    for (const dst of [F6.sgw0, '10.0.0.1', F6.ch2, F6.ch0])
      expect([dst, reencrypt(dst).reason]).toEqual([dst, Reason.policy_punt]);
    expect(reencrypt(F6.chx)).toMatchObject({ verdict: Verdict.PUNT, reason: Reason.no_policy });
    // A binding learned for a care-of address in Site 1: punted at once (the policy protects to the SMN there).
    bindings.set(ipToU32(F6.coa1), ipToU32(F6.home));
    t.resumeCareOf(ipToU32(F6.coa1));
    expect(reencrypt(F6.coa1)).toMatchObject({ verdict: Verdict.PUNT, reason: Reason.policy_punt });
    // Only SMNs whose HA the map names re-encrypt in the engine; an SGW peer's misses stay with the policy.
    expect(t.selectorMissFor({ nsid: NSID_IPV4, address: ipToU32(F6.home) })).toEqual({ outbound: REENCRYPT_TABLE });
    expect(t.selectorMissFor({ nsid: NSID_NONE, address: ipToU32(F6.sgw1) })).toBe('punt');
  });

  it('a destination behind this SGW (or an SGW nested behind it) or a care-of address is never learned from a re-encryption', async () => {
    const { engine, tables, map } = await setUp(impl);
    tables.learnReencrypt(ipToU32(F6.ch0), { kind: 'sgw', sgw: map.sgw('sgw0')! }, undefined);
    tables.learnReencrypt(ipToU32(F6.coa1), { kind: 'smn', home: F6.home, careOf: F6.coa1 }, undefined);
    tables.refresh();
    expect(tables.size().protected).toBe(0);
    expect(outbound(engine, REENCRYPT_TABLE, F6.home, F6.ch0)).toMatchObject({ verdict: Verdict.PUNT });
  });
});

describe.each(IMPLS)('SgwTables Next-hop plain table (§3.5) on the %s engine', (impl) => {
  it("a visiting SMN's Next-hop SA sends its home and care-of addresses' plain datagrams through the table; an SGW's, an own SMN's and a stranger's do not", async () => {
    const visited = await setUp(impl, 'sgw1');
    expect(visited.tables.plainFor({ nsid: NSID_IPV4, address: ipToU32(F6.home) }, F6.coa1)).toEqual({
      src: [`${F6.home}/32`, `${F6.coa1}/32`],
      outbound: NEXTHOP_PLAIN_TABLE,
    });
    expect(visited.tables.plainFor({ nsid: NSID_NONE, address: ipToU32(F6.sgw0) }, F6.sgw0)).toBeUndefined();
    // No HA serves it: the policy drops what its layer carries (unknown identity).
    expect(visited.tables.plainFor({ nsid: NSID_IPV4, address: ipToU32('192.0.2.9') }, F6.coa1)).toBeUndefined();
    // At its home SGW the policy answers an SMN's plain datagram under its Next-hop layer with code 5 (§3.2 step 2).
    const home = await setUp(impl, 'sgw0');
    expect(home.tables.plainFor({ nsid: NSID_IPV4, address: ipToU32(F6.home) }, F6.coa1)).toBeUndefined();
  });

  it('passes (TTL - 1) only the outside hosts learned, for a minute; own addresses, care-of addresses and SGW prefixes punt, even if learned', async () => {
    const { engine, clock, tablesFor } = await setUp(impl, 'sgw1');
    // A care-of address outside every SGW (the SMN outside): only its binding keeps it from the pass.
    const bindings = new Map([[ipToU32(F6.out), ipToU32(F6.home)]]);
    const careOfs = {
      get: (c: number) => bindings.get(c),
      has: (c: number) => bindings.has(c),
      entries: () => bindings.entries(),
    };
    const tables = tablesFor({ careOfs });
    tables.refresh();
    expect(outbound(engine, NEXTHOP_PLAIN_TABLE, F6.home, F6.chx)).toMatchObject({ reason: Reason.no_policy });
    for (const dst of [F6.chx, F6.out, F6.sgw1, F6.ch0, F6.ch1]) tables.learnPlainPass(ipToU32(dst));
    const r = outbound(engine, NEXTHOP_PLAIN_TABLE, F6.home, F6.chx, 9);
    expect(r).toMatchObject({ verdict: Verdict.FORWARD, nexthop: ipToU32(F6.chx) });
    expect(r.packet[8]).toBe(8);
    for (const dst of [F6.out, F6.sgw1, F6.ch0, F6.ch1])
      expect([dst, outbound(engine, NEXTHOP_PLAIN_TABLE, F6.home, dst).reason]).toEqual([dst, Reason.policy_punt]);
    // Not in the tables the interfaces read.
    expect(outbound(engine, INSIDE, F6.home, F6.chx).verdict).toBe(Verdict.PUNT);
    clock.run(60_001);
    tables.refresh();
    expect(outbound(engine, NEXTHOP_PLAIN_TABLE, F6.home, F6.chx)).toMatchObject({ reason: Reason.no_policy });
  });
});

describe('SgwTables selectors and prefix arithmetic', () => {
  it('subtractPrefixes leaves exactly the addresses outside the holes', () => {
    const left = subtractPrefixes([parsePrefix('10.0.0.0/16')], [parsePrefix('10.0.5.0/24')]);
    expect(left).toHaveLength(8);
    const covered = (a: string) =>
      left.filter((p) => (ipToU32(a) ^ p.network) >>> (32 - p.length) === 0 || p.length === 0).length;
    expect(covered('10.0.5.7')).toBe(0);
    for (const a of ['10.0.0.1', '10.0.4.255', '10.0.6.0', '10.0.255.255']) expect(covered(a)).toBe(1);
  });

  it('an SGW peer speaks for its region, an SMN for its home address; unknown peers get selectors nothing matches', async () => {
    const { tables } = await setUp('ts');
    expect(tables.selectorsFor({ nsid: NSID_NONE, address: ipToU32(F6.sgw1) })).toEqual({
      src: ['10.1.0.0/16'],
      dst: ['10.0.0.0/16'],
    });
    expect(tables.selectorsFor({ nsid: NSID_IPV4, address: ipToU32(F6.home) })).toEqual({
      src: ['10.0.0.100/32'],
      dst: ['10.0.0.0/16'],
    });
    expect(tables.selectorsFor({ nsid: NSID_NONE, address: ipToU32(F6.chx) })).toEqual({
      src: ['0.0.0.0/32'],
      dst: ['0.0.0.0/32'],
    });
  });

  it("an SGW peer does not speak for this SGW's own SMNs' home addresses behind it (Figure 4: SGW3 behind SGW2)", () => {
    const map = figure4Map();
    const engine = engineWith('ts', []);
    opened.push(engine);
    const requests = { end: () => ({}) as never, nextHop: () => ({}) as never };
    const tables = new SgwTables(
      { map, self: map.sgw('sgw3')! },
      engine,
      {} as NodeKeys,
      requests,
      { inside: INSIDE, outside: [OUTSIDE] },
      new VirtualClock(0),
      new Tally(),
    );
    const { src } = tables.selectorsFor({ nsid: NSID_NONE, address: ipToU32('198.18.2.1') });
    const covers = (a: string) =>
      src.map(parsePrefix).some((p) => p.length === 0 || (ipToU32(a) ^ p.network) >>> (32 - p.length) === 0);
    // The HA's mobile node 10.0.1.100: End-End from SGW2 for it is the policy's (code 5); the rest of SGW3's site and
    // SGW2's own network stay SGW2's to speak for.
    expect(covers('10.0.1.100')).toBe(false);
    for (const a of ['10.0.1.10', '10.0.1.2', '10.0.0.20']) expect([a, covers(a)]).toEqual([a, true]);
  });
});
