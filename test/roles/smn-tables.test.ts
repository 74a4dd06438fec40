// Issue 11 item 1 for the SMN: what its paths decide for a destination becomes an OUTBOUND policy in the table of
// its application port (End-End SA, Next-hop SAs innermost first), updated as SAs rotate, on handover and on
// failures. The Figure 6 world (memory network) with a host data path on the SMN's host: the engine's output for
// the compiled table must reach the correspondent as the JS path's does. Both engines.
import { afterEach, describe, expect, it } from 'vitest';
import { Batch, Op, Reason, Verdict, type Engine, type Policy } from '../../src/engine/index.js';
import { SKIP_COUNTER_SECONDS } from '../../src/keys/derive.js';
import { figure6World } from '../../src/lab/figure6-world.js';
import { F6 } from '../../src/lab/scenarios/figure6-cases.js';
import { SETTLE_MS } from '../../src/lab/scenario.js';
import { collectEchoes, probe } from '../../src/lab/traffic.js';
import type { World, WorldOptions } from '../../src/lab/world.js';
import type { HostDataPath } from '../../src/net/types.js';
import { APPLICATION_PORT, TABLE_REFRESH_MS } from '../../src/roles/smn/mobile-node.js';
import { compileSmnPolicies } from '../../src/roles/smn/tables.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildSecurityFailurePacket, Icmp40Code } from '../../src/wire/icmp40.js';
import { buildIpv4, IpProto } from '../../src/wire/ipv4.js';
import { decodeSkipHeader as decodeSkip, IPPROTO_SKIP } from '../../src/wire/skip.js';

process.env.MIPSEC_NATIVE = '1';
const APP_TABLE = 7;
const IFACE_TABLE = 1;

describe('compileSmnPolicies', () => {
  it('protects each destination for the home and care-of sources in the application table; own addresses are inbound in each interface table', () => {
    const policies = compileSmnPolicies({
      appTable: APP_TABLE,
      interfaceTables: [IFACE_TABLE],
      homeAddress: F6.home,
      careOf: F6.coa1,
      protections: new Map([
        [ipToU32(F6.ch2), { sa: 9, wraps: [] }],
        [ipToU32(F6.ch0), { sa: 5, wraps: [6] }],
      ]),
    });
    expect(policies).toEqual([
      { prefix: `${F6.coa1}/32`, table: IFACE_TABLE, proto: 6, action: 'bypass', sa: 0 },
      { prefix: `${F6.coa1}/32`, table: IFACE_TABLE, action: 'inbound', sa: 0 },
      { prefix: `${F6.home}/32`, table: IFACE_TABLE, action: 'inbound', sa: 0 },
      {
        prefix: `${F6.ch0}/32`,
        table: APP_TABLE,
        src: [`${F6.coa1}/32`, `${F6.home}/32`],
        action: 'protect',
        sa: 5,
        wrap: [6],
      },
      { prefix: `${F6.ch2}/32`, table: APP_TABLE, src: [`${F6.coa1}/32`, `${F6.home}/32`], action: 'protect', sa: 9 },
    ]);
  });

  it('at home the home address is listed once, and what the applications send from it leaves as it is', () => {
    const policies = compileSmnPolicies({
      appTable: APP_TABLE,
      interfaceTables: [IFACE_TABLE],
      homeAddress: F6.home,
      careOf: F6.home,
      protections: new Map(),
    });
    expect(policies).toEqual([
      { prefix: `${F6.home}/32`, table: IFACE_TABLE, proto: 6, action: 'bypass', sa: 0 },
      { prefix: `${F6.home}/32`, table: IFACE_TABLE, action: 'inbound', sa: 0 },
      { prefix: '0.0.0.0/0', table: APP_TABLE, src: [`${F6.home}/32`], action: 'bypass', sa: 0 },
    ]);
  });

  it('a destination without layers (SA 0) is bypassed from the own addresses, only away from home', () => {
    const policies = compileSmnPolicies({
      appTable: APP_TABLE,
      interfaceTables: [IFACE_TABLE],
      homeAddress: F6.home,
      careOf: F6.coa1,
      protections: new Map([[ipToU32(F6.ch2), { sa: 0, wraps: [] }]]),
    });
    expect(policies.filter((p) => p.table === APP_TABLE)).toEqual([
      { prefix: `${F6.ch2}/32`, table: APP_TABLE, src: [`${F6.coa1}/32`, `${F6.home}/32`], action: 'bypass', sa: 0 },
    ]);
  });
});

describe.each(['native', 'ts'] as const)('the SMN compiles its paths into its engine (%s engine)', (impl) => {
  let world: World | undefined;
  afterEach(() => world?.close());

  async function visiting(
    place = 'sgw1',
    smn?: WorldOptions['smn'],
    more: Omit<WorldOptions, 'map' | 'engine' | 'smn'> = {},
  ): Promise<{ w: World; engine: Engine }> {
    const w = await figure6World({ engine: impl, smn, ...more });
    world = w;
    const dataPath: HostDataPath = {
      tableOf: (port) => (port === APPLICATION_PORT ? APP_TABLE : IFACE_TABLE),
      onEnginePunt: () => () => {},
      inject: () => false,
    };
    Object.defineProperty(w.smnHost, 'dataPath', { value: dataPath });
    w.place(place);
    w.network.runFor(SETTLE_MS);
    expect(w.smn.registration.state).toBe('registered');
    return { w, engine: w.engines.at(-1)! };
  }

  function echoed(w: World, seq: number): boolean {
    const echoes = collectEchoes(w.smnHost);
    w.smn.send(probe(F6.home, F6.ch0, seq));
    w.network.runFor(SETTLE_MS);
    echoes.stop();
    return echoes.seqs.includes(seq);
  }

  function echoedFrom(w: World, dst: string, seq: number): boolean {
    const echoes = collectEchoes(w.smnHost);
    w.smn.send(probe(F6.home, dst, seq));
    w.network.runFor(SETTLE_MS);
    echoes.stop();
    return echoes.seqs.includes(seq);
  }

  /** What the engine makes of an application's datagram by the compiled tables alone (no JS decision). */
  function sealByTable(engine: Engine, datagram: Uint8Array): { verdict: number; packet: Uint8Array } {
    const batch = new Batch({ capacity: 1, slotSize: 4096, headroom: 512 });
    batch.push(Op.OUTBOUND, datagram, APP_TABLE);
    engine.process(batch);
    const r = batch.result(0);
    return { verdict: r.verdict, packet: r.packet.slice() };
  }

  /** What the engine makes of a datagram arriving at the SMN's interface by the compiled tables alone. */
  function arrive(engine: Engine, datagram: Uint8Array): { verdict: number; reason: number; packet: Uint8Array } {
    const batch = new Batch({ capacity: 1, slotSize: 4096, headroom: 512 });
    batch.push(Op.OUTBOUND, datagram, IFACE_TABLE);
    engine.process(batch);
    const r = batch.result(0);
    return { verdict: r.verdict, reason: r.reason, packet: r.packet.slice() };
  }

  function protectOf(w: World, dst: string) {
    return w.smn.policies().find((p) => p.prefix === `${dst}/32` && p.action === 'protect');
  }

  it("after the first packet, the policy for the CH seals the next ones as the JS path does: End-End to SGW0 inside SGW1's Next-hop layer", async () => {
    const { w, engine } = await visiting();
    expect(
      w.smn
        .policies()
        .filter((p) => p.action === 'inbound')
        .map((p) => p.prefix),
    ).toEqual([`${F6.coa1}/32`, `${F6.home}/32`]);
    expect(echoed(w, 1)).toBe(true);
    const policy = protectOf(w, F6.ch0);
    expect(policy).toMatchObject({ table: APP_TABLE, sa: expect.any(Number), wrap: [expect.any(Number)] });
    const sealed = sealByTable(engine, probe(F6.home, F6.ch0, 2));
    expect(sealed.verdict).toBe(Verdict.FORWARD);
    // On the wire, without the SMN's JS: CH0 gets it and its echo comes back.
    expectSealedToSgw1AndAnswered(w, sealed.packet);
  });

  it('an SA that rotates (the SKIP counter n moves on) is replaced in the policy by the refresh; a handover empties the protections and moves the inbound addresses', async () => {
    const { w } = await visiting();
    expect(echoed(w, 1)).toBe(true);
    const before = protectOf(w, F6.ch0)!;
    // An hour later n has moved on: the refresh keys new SAs and puts them in the policy (no packet needed).
    w.network.runFor(SKIP_COUNTER_SECONDS * 1000 + 2 * TABLE_REFRESH_MS);
    const after = protectOf(w, F6.ch0)!;
    expect(after.sa).not.toBe(before.sa);
    expect(after.wrap).toHaveLength(1);
    expect(after.wrap).not.toEqual(before.wrap);
    expect(echoed(w, 3)).toBe(true);

    w.place('sgw2');
    w.network.runFor(SETTLE_MS);
    expect(protectOf(w, F6.ch0)).toBeUndefined();
    expect(
      w.smn
        .policies()
        .filter((p) => p.action === 'inbound')
        .map((p) => p.prefix),
    ).toEqual([`${F6.coa2}/32`, `${F6.home}/32`]);
    expect(echoed(w, 4)).toBe(true);
    expect(protectOf(w, F6.ch0)).toMatchObject({ src: [`${F6.coa2}/32`, `${F6.home}/32`] });
  });

  it("at home the applications' datagrams leave as they are by the table (usual IP), as the JS path passes them", async () => {
    const { w, engine } = await visiting();
    w.place('home');
    w.network.runFor(SETTLE_MS);
    const datagram = probe(F6.home, F6.ch1, 7);
    const out = sealByTable(engine, datagram);
    expect(out.verdict).toBe(Verdict.FORWARD);
    expect(out.packet).toEqual(datagram);
    // Not what a CH sends from elsewhere: only the home address's own datagrams are covered.
    expect(sealByTable(engine, probe(F6.ch0, F6.ch1, 8)).verdict).toBe(Verdict.PUNT);
    // What arrives at the interface: TCP to the home address goes to the host's stack as it is; the registration
    // reply (UDP 434), ICMP 40 and the rest go through INBOUND to the role (not_ipsec).
    const tcp = buildIpv4(
      { src: ipToU32(F6.ch1), dst: ipToU32(F6.home), protocol: IpProto.TCP, ttl: 60 },
      new Uint8Array(40),
    );
    expect(arrive(engine, tcp)).toEqual({ verdict: Verdict.FORWARD, reason: Reason.none, packet: tcp });
    const reply = buildIpv4({ src: ipToU32(F6.ha), dst: ipToU32(F6.home), protocol: IpProto.UDP, ttl: 60 }, udp434());
    const failure = buildSecurityFailurePacket(ipToU32(F6.sgw0), ipToU32(F6.home), Icmp40Code.needAuthentication, tcp);
    for (const p of [reply, failure, probe(F6.ch1, F6.home, 9)])
      expect(arrive(engine, p)).toEqual({ verdict: Verdict.PUNT, reason: Reason.not_ipsec, packet: p });
    // Away, TCP to the home address goes through INBOUND too (it comes in the HA's tunnel); TCP to the care-of address
    // goes to the host's stack, as the JS path passes it.
    w.place('sgw1');
    w.network.runFor(SETTLE_MS);
    expect(arrive(engine, tcp).verdict).toBe(Verdict.PUNT);
    const toCareOf = buildIpv4(
      { src: ipToU32(F6.ch1), dst: ipToU32(F6.coa1), protocol: IpProto.TCP, ttl: 60 },
      new Uint8Array(40),
    );
    expect(arrive(engine, toCareOf)).toEqual({ verdict: Verdict.FORWARD, reason: Reason.none, packet: toCareOf });
    const udpToCareOf = buildIpv4(
      { src: ipToU32(F6.ha), dst: ipToU32(F6.coa1), protocol: IpProto.UDP, ttl: 60 },
      udp434(),
    );
    expect(arrive(engine, udpToCareOf)).toEqual({
      verdict: Verdict.PUNT,
      reason: Reason.not_ipsec,
      packet: udpToCareOf,
    });
  });

  it('§3.5 direct from outside: once the first datagram went plain, the table bypasses the next ones; visiting a site (an SGW on the way) it does not', async () => {
    const { w, engine } = await visiting('outside', { outsideCh: 'direct' });
    w.smn.send(probe(F6.out, F6.chx, 1));
    w.network.runFor(SETTLE_MS);
    expect(w.smn.policies().find((p) => p.prefix === `${F6.chx}/32`)).toMatchObject({
      table: APP_TABLE,
      action: 'bypass',
      sa: 0,
    });
    const datagram = probe(F6.out, F6.chx, 2);
    const out = sealByTable(engine, datagram);
    expect(out.verdict).toBe(Verdict.FORWARD);
    expect(out.packet).toEqual(datagram);
    // The CH's TCP back to the care-of address reaches the host's stack by the interface table, not through the role.
    const reply = buildIpv4(
      { src: ipToU32(F6.chx), dst: ipToU32(F6.out), protocol: IpProto.TCP, ttl: 60 },
      new Uint8Array(40),
    );
    expect(arrive(engine, reply)).toEqual({ verdict: Verdict.FORWARD, reason: Reason.none, packet: reply });

    w.place('sgw1');
    w.network.runFor(SETTLE_MS);
    w.smn.send(probe(F6.coa1, F6.chx, 3));
    w.network.runFor(SETTLE_MS);
    expect(w.smn.policies().find((p) => p.prefix === `${F6.chx}/32`)).toBeUndefined();
  });

  it('§3.5 Mobile IP without IPsec: once SGW1 asked for its Next-hop layer, the table seals the next datagrams to the outside CH under it alone (sa 0), as the JS path does', async () => {
    // The CH's reply comes back through the home network (SGW0 lets usual IP in), the HA and SGW0's End-End layer.
    const { w, engine } = await visiting('sgw1', undefined, { plainInbound: { sgw0: 'pass' } });
    expect(echoedFrom(w, F6.chx, 1)).toBe(true);
    const policy = w.smn.policies().find((p) => p.prefix === `${F6.chx}/32`);
    expect(policy).toMatchObject({ table: APP_TABLE, action: 'protect', sa: 0, wrap: [expect.any(Number)] });
    const sealed = sealByTable(engine, probe(F6.home, F6.chx, 2));
    expect(sealed.verdict).toBe(Verdict.FORWARD);
    expectSealedToSgw1AndAnswered(w, sealed.packet);
    // The refresh keeps it (the same layers are still what the path table says).
    w.network.runFor(4 * TABLE_REFRESH_MS);
    expect(w.smn.policies().find((p) => p.prefix === `${F6.chx}/32`)).toMatchObject({ action: 'protect', sa: 0 });
  });

  it('§3.2 step 2 toward a VPN-routable CH (an End-End peer may still come of it, code 5) stays with the JS path', async () => {
    const { w, engine } = await visiting('sgw1', { procedure: 'three-step' });
    // Every table the SMN publishes while the three steps run: none may seal for CH0 under Next-hop layers alone.
    const published: Policy[][] = [];
    const setPolicies = engine.setPolicies.bind(engine);
    engine.setPolicies = (policies) => {
      published.push([...policies]);
      setPolicies(policies);
    };
    expect(echoed(w, 1)).toBe(true);
    expect(w.smn.counters()).toMatchObject({ failure_need_nexthop: expect.any(Number), failure_need_end_end: 1 });
    expect(published.flat().filter((p) => p.prefix === `${F6.ch0}/32` && p.sa === 0)).toEqual([]);
    // Code 5 from SGW0 moved it to End-End with SGW0, which the table then seals.
    expect(protectOf(w, F6.ch0)!.sa).not.toBe(0);
  });

  it('hole 5 on the fast path: a failure quoting a packet the engine sealed alone is believed; the same quote with a sequence number not yet used is not', async () => {
    const { w, engine } = await visiting();
    expect(echoed(w, 1)).toBe(true);
    const sealed = sealByTable(engine, probe(F6.home, F6.ch0, 2)).packet;
    const nexthopBefore = w.smn.counters().failure_need_nexthop ?? 0;
    const mallory = w.addHost('mallory', '10.1.0.66');
    const failure = (quoted: Uint8Array) => {
      mallory.send(
        buildSecurityFailurePacket(ipToU32(F6.sgw1), ipToU32(F6.coa1), Icmp40Code.needAuthentication, quoted),
        { bypassHooks: true },
      );
      w.network.runFor(50);
    };
    // Next-hop AH: SKIP header, then AH (SPI at +4, sequence at +8).
    const ihl = (sealed[0] & 0x0f) * 4;
    const ahAt = ihl + skipHeaderLength(sealed, ihl);
    const future = sealed.slice();
    new DataView(future.buffer).setUint32(
      ahAt + 8,
      new DataView(sealed.buffer, sealed.byteOffset).getUint32(ahAt + 8) + 1,
    );
    failure(future);
    expect(w.smn.counters()).toMatchObject({ failure_quote_not_sent: 1 });
    const forged = sealed.slice();
    forged[ihl + 8] ^= 1; // a byte of the wrapped Kp
    failure(forged);
    expect(w.smn.counters()).toMatchObject({ failure_quote_not_sent: 2 });
    failure(sealed);
    expect(w.smn.counters().failure_quote_not_sent).toBe(2);
    // Believed: the path rules then judge it (SGW1 is on the path and already known: nothing to re-send).
    expect(w.smn.counters().failure_need_nexthop).toBe(nexthopBefore + 1);
  });
});

/** The SKIP header's length at `at` (RFC-draft SKIP: 8 fixed bytes + wrapped Kp + MKIDs), from the wire decoder. */
function skipHeaderLength(packet: Uint8Array, at: number): number {
  const h = decodeSkip(packet, at);
  if (!h.ok) throw new Error(`not a SKIP header: ${h.reason}`);
  return h.length;
}

/** A UDP header 434 → 434 and a few bytes: the shape of a Mobile IP registration reply. */
function udp434(): Uint8Array {
  const b = new Uint8Array(32);
  b.set([0x01, 0xb2, 0x01, 0xb2, 0, 32, 0, 0, 3]);
  return b;
}

/** `sealed` leaves the care-of address for SGW1 as SKIP; sent on the wire without the SMN's JS, its echo (seq 2) comes back. */
function expectSealedToSgw1AndAnswered(w: World, sealed: Uint8Array): void {
  expect([sealed[9], sealed.subarray(12, 16).join('.'), sealed.subarray(16, 20).join('.')]).toEqual([
    IPPROTO_SKIP,
    F6.coa1,
    F6.sgw1,
  ]);
  const echoes = collectEchoes(w.smnHost);
  w.smnHost.send(sealed, { bypassHooks: true });
  w.network.runFor(SETTLE_MS);
  echoes.stop();
  expect(echoes.seqs).toEqual([2]);
}
