// Native vs TS, byte for byte: equal SAs, sequence numbers and inputs give identical outputs, and each path
// decapsulates the other's (docs/engine.md). Every pair (sender impl → receiver impl) runs every flow.
process.env.MIPSEC_NATIVE = '1';
import { afterEach, describe, expect, it } from 'vitest';
import { Op, Reason, Verdict, type Engine, type EngineImpl, type OpCode, type SaDesc } from '../../src/engine/index.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { describe as describePacket } from '../../src/wire/describe.js';
import {
  ADDR,
  COVERAGES,
  ESP_SUITES,
  MAC_ALGS,
  MODES,
  datagram,
  diffBytes,
  endSaPair,
  espDatagram,
  engineWith,
  hex,
  nexthopSaPair,
  runOne,
  type RunResult,
} from './fixtures.js';

const PAIRS = [
  ['ts', 'ts'],
  ['ts', 'native'],
  ['native', 'ts'],
  ['native', 'native'],
] as const;
const SIZES = [20, 21, 22, 23, 64, 511, 1400, 1480];
const AH_CHOICES = [undefined, ...MAC_ALGS] as const;

const opened: Engine[] = [];
afterEach(() => {
  for (const e of opened.splice(0)) e.close();
});

/** The same node on both impls: `main` is the impl under test, `mirror` the other one (or a second TS engine). */
interface Node {
  main: Engine;
  mirror: Engine;
}

function node(
  impl: EngineImpl,
  other: EngineImpl,
  sas: readonly SaDesc[],
  setup?: Parameters<typeof engineWith>[2],
): Node {
  const main = engineWith(impl, sas, setup);
  const mirror = engineWith(other, sas, setup);
  opened.push(main, mirror);
  return { main, mirror };
}

/** Runs one op on both engines of a node; they must agree exactly. Returns the main engine's result. */
function step(n: Node, op: OpCode, packet: Uint8Array, arg0 = 0, arg1 = 0): RunResult {
  const a = runOne(n.main, op, packet, arg0, arg1);
  const b = runOne(n.mirror, op, packet, arg0, arg1);
  expect(
    { verdict: b.verdict, reason: b.reason, sa: b.sa, nexthop: b.nexthop },
    `${n.main.impl} vs ${n.mirror.impl} outcome`,
  ).toEqual({
    verdict: a.verdict,
    reason: a.reason,
    sa: a.sa,
    nexthop: a.nexthop,
  });
  expect(hex(b.packet), `${n.main.impl} vs ${n.mirror.impl} bytes differ: ${diffBytes(a.packet, b.packet)}`).toBe(
    hex(a.packet),
  );
  return a;
}

/** Both engines of a node report the same statistics for every SA. */
function expectSameStats(n: Node, ids: readonly number[]): void {
  for (const id of ids) {
    const a = n.main.saStats(id);
    expect(a, `SA ${id} on ${n.main.impl}`).toBeDefined();
    expect(n.mirror.saStats(id), `SA ${id} stats, ${n.main.impl} vs ${n.mirror.impl}`).toEqual(a);
  }
}

function expectVerdict(r: RunResult, verdict: number, sa: number, nexthop = 0): void {
  expect({ verdict: r.verdict, reason: r.reason, sa: r.sa, nexthop: r.nexthop }).toEqual({
    verdict,
    reason: Reason.none,
    sa,
    nexthop,
  });
}

describe.each(PAIRS)('[%s→%s] differential', (sender, receiver) => {
  // ts → ts checks the TS path against itself (determinism) so it runs without the addon; every other pair is native vs TS.
  const mirrorOf = (impl: EngineImpl): EngineImpl =>
    sender === 'ts' && receiver === 'ts' ? 'ts' : impl === 'ts' ? 'native' : 'ts';

  for (const mode of MODES) {
    for (const suite of ESP_SUITES) {
      for (const ah of AH_CHOICES) {
        it(`end-end ${mode} ${suite}${ah ? ` + AH ${ah}` : ''}: ENCAP identical, cross INBOUND delivers every size`, () => {
          const pair = endSaPair({ suite, ah, mode, id: 7, src: ADDR.sgw0, dst: ADDR.sgw1, seq: 0x1fffe });
          const tx = node(sender, mirrorOf(sender), [pair.out]);
          const rx = node(receiver, mirrorOf(receiver), [pair.in], { local: [ADDR.sgw1] });
          for (const size of SIZES) {
            const inner = datagram(size, { df: size % 2 === 0, tos: size & 0xfc });
            const sealed = step(tx, Op.ENCAP, inner, pair.out.id);
            expectVerdict(sealed, Verdict.FORWARD, pair.out.id, ipToU32(ADDR.sgw1));
            const opened = step(rx, Op.INBOUND, sealed.packet);
            expectVerdict(opened, Verdict.DELIVER, pair.in.id);
            expect(hex(opened.packet)).toBe(hex(inner));
          }
          expectSameStats(tx, [pair.out.id]);
          expectSameStats(rx, [pair.in.id]);
          const sent = tx.main.saStats(pair.out.id)!;
          expect(sent.espSeq).toBe(0x1fffe + SIZES.length);
          expect(rx.main.saStats(pair.in.id)).toEqual({ ...sent, ahSeq: ah ? sent.ahSeq : 0 });
        });
      }
    }
    for (const alg of MAC_ALGS) {
      for (const coverage of COVERAGES) {
        it(`next-hop ${mode} ${alg} ${coverage}: WRAP identical, the gateway peels it and opens the end layer`, () => {
          const end = endSaPair({
            suite: 'aes128gcm',
            ah: 'hmac-sha256-128',
            mode,
            id: 11,
            src: ADDR.smnCoa,
            dst: ADDR.sgw0,
            mkid: { src: ADDR.smnHome },
          });
          const hop = nexthopSaPair({
            alg,
            coverage,
            mode,
            id: 12,
            src: ADDR.smnCoa,
            dst: ADDR.sgw0,
            mkid: { src: ADDR.smnHome },
          });
          const smn = node(sender, mirrorOf(sender), [end.out, hop.out]);
          const sgw0 = node(receiver, mirrorOf(receiver), [end.in, hop.in], { local: [ADDR.sgw0] });
          for (const size of SIZES) {
            const inner = datagram(size);
            const sealed = step(smn, Op.ENCAP, inner, end.out.id);
            const wrapped = step(smn, Op.WRAP, sealed.packet, hop.out.id);
            expectVerdict(wrapped, Verdict.FORWARD, hop.out.id, ipToU32(ADDR.sgw0));
            const opened = step(sgw0, Op.INBOUND, wrapped.packet);
            expectVerdict(opened, Verdict.DELIVER, end.in.id);
            expect(hex(opened.packet)).toBe(hex(inner));
          }
        });
      }
    }
  }

  for (const alg of MAC_ALGS) {
    for (const coverage of COVERAGES) {
      it(`relay chain ${alg} ${coverage}: SMN → SGW1 → SGW2 → SGW0, each relay replaces the layer in place`, () => {
        const end = endSaPair({
          suite: 'aes128gcm',
          ah: 'gmac-aes128',
          mode: 'skip',
          id: 21,
          src: ADDR.smnCoa,
          dst: ADDR.sgw0,
          mkid: { src: ADDR.smnHome },
        });
        const smnToSgw1 = nexthopSaPair({
          alg,
          coverage,
          mode: 'skip',
          id: 22,
          src: ADDR.smnCoa,
          dst: ADDR.sgw1,
          mkid: { src: ADDR.smnHome },
        });
        const sgw1ToSgw2 = nexthopSaPair({ alg, coverage, mode: 'skip', id: 23, src: ADDR.sgw1, dst: ADDR.sgw2 });
        const sgw2ToSgw0 = nexthopSaPair({ alg, coverage, mode: 'skip', id: 24, src: ADDR.sgw2, dst: ADDR.sgw0 });
        const smn = node(sender, mirrorOf(sender), [end.out, smnToSgw1.out]);
        const sgw1 = node(receiver, mirrorOf(receiver), [smnToSgw1.in, sgw1ToSgw2.out], {
          local: [ADDR.sgw1],
          routes: [{ prefix: `${ADDR.sgw0}/32`, sa: sgw1ToSgw2.out.id }],
        });
        const sgw2 = node(sender, mirrorOf(sender), [sgw1ToSgw2.in, sgw2ToSgw0.out], {
          local: [ADDR.sgw2],
          routes: [{ prefix: '198.18.0.0/24', sa: sgw2ToSgw0.out.id }],
        });
        const sgw0 = node(receiver, mirrorOf(receiver), [sgw2ToSgw0.in, end.in], { local: [ADDR.sgw0] });
        for (const size of SIZES) {
          const inner = datagram(size);
          const sealed = step(smn, Op.ENCAP, inner, end.out.id);
          const wrapped = step(smn, Op.WRAP, sealed.packet, smnToSgw1.out.id);
          const hop1 = step(sgw1, Op.INBOUND, wrapped.packet);
          expectVerdict(hop1, Verdict.FORWARD, smnToSgw1.in.id, ipToU32(ADDR.sgw2));
          // NSID 1 → NSID 0: the SMN's layer had a 4-byte MKID more than SGW1's, so the packet shrinks by 4.
          expect(hop1.packet.length).toBe(wrapped.packet.length - 4);
          expect(hex(hop1.packet.subarray(hop1.packet.length - sealed.packet.length))).toBe(hex(sealed.packet));
          const hop2 = step(sgw2, Op.INBOUND, hop1.packet);
          expectVerdict(hop2, Verdict.FORWARD, sgw1ToSgw2.in.id, ipToU32(ADDR.sgw0));
          expect(hop2.packet.length).toBe(hop1.packet.length);
          const opened = step(sgw0, Op.INBOUND, hop2.packet);
          expectVerdict(opened, Verdict.DELIVER, end.in.id);
          expect(hex(opened.packet)).toBe(hex(inner));
        }
        expectSameStats(smn, [end.out.id, smnToSgw1.out.id]);
        expectSameStats(sgw1, [smnToSgw1.in.id, sgw1ToSgw2.out.id]);
        expectSameStats(sgw2, [sgw1ToSgw2.in.id, sgw2ToSgw0.out.id]);
        expectSameStats(sgw0, [sgw2ToSgw0.in.id, end.in.id]);
      });
    }
  }

  it('stacked next-hop layers (§3.4): two WRAPs, peeled by two gateways', () => {
    const end = endSaPair({
      suite: 'chacha20poly1305',
      mode: 'skip',
      id: 31,
      src: ADDR.smnCoa,
      dst: ADDR.sgw0,
      mkid: { src: ADDR.smnHome },
    });
    const toSgw2 = nexthopSaPair({
      alg: 'hmac-sha256-128',
      coverage: 'headers',
      mode: 'skip',
      id: 32,
      src: ADDR.smnCoa,
      dst: ADDR.sgw2,
      mkid: { src: ADDR.smnHome },
    });
    const toSgw1 = nexthopSaPair({
      alg: 'gmac-aes128',
      mode: 'skip',
      id: 33,
      src: ADDR.smnCoa,
      dst: ADDR.sgw1,
      mkid: { src: ADDR.smnHome },
    });
    const sgw2ToSgw0 = nexthopSaPair({
      alg: 'gmac-aes128',
      coverage: 'headers',
      mode: 'spi',
      id: 34,
      src: ADDR.sgw2,
      dst: ADDR.sgw0,
    });
    const smn = node(sender, mirrorOf(sender), [end.out, toSgw2.out, toSgw1.out]);
    const sgw1 = node(receiver, mirrorOf(receiver), [toSgw1.in], {
      local: [ADDR.sgw1],
      routes: [{ prefix: '0.0.0.0/0', sa: 0 }],
    });
    const sgw2 = node(sender, mirrorOf(sender), [toSgw2.in, sgw2ToSgw0.out], {
      local: [ADDR.sgw2],
      routes: [{ prefix: `${ADDR.sgw0}/32`, sa: sgw2ToSgw0.out.id }],
    });
    const sgw0 = node(receiver, mirrorOf(receiver), [sgw2ToSgw0.in, end.in], { local: [ADDR.sgw0] });
    for (const size of [20, 64, 1400]) {
      const inner = datagram(size);
      const sealed = step(smn, Op.ENCAP, inner, end.out.id);
      const inner2 = step(smn, Op.WRAP, sealed.packet, toSgw2.out.id);
      const outer = step(smn, Op.WRAP, inner2.packet, toSgw1.out.id);
      expect(describePacket(outer.packet)).toBe(
        `IPv4(${ADDR.smnCoa}>${ADDR.sgw1}) / SKIP(NSID1 MKID ${ADDR.smnHome} > NSID0) / AH[next] / ` +
          `IPv4(${ADDR.smnCoa}>${ADDR.sgw2}) / SKIP(NSID1 MKID ${ADDR.smnHome} > NSID0) / AH[next] / ` +
          `IPv4(${ADDR.smnCoa}>${ADDR.sgw0}) / SKIP(NSID1 MKID ${ADDR.smnHome} > NSID0) / ESP(spi 1)`,
      );
      const atSgw1 = step(sgw1, Op.INBOUND, outer.packet);
      expectVerdict(atSgw1, Verdict.FORWARD, toSgw1.in.id, ipToU32(ADDR.sgw2));
      expect(hex(atSgw1.packet)).toBe(hex(inner2.packet));
      const atSgw2 = step(sgw2, Op.INBOUND, atSgw1.packet);
      expectVerdict(atSgw2, Verdict.FORWARD, toSgw2.in.id, ipToU32(ADDR.sgw0));
      expect(describePacket(atSgw2.packet)).toBe(
        `IPv4(${ADDR.sgw2}>${ADDR.sgw0}) / AH[next] / IPv4(${ADDR.smnCoa}>${ADDR.sgw0}) / SKIP(NSID1 MKID ${ADDR.smnHome} > NSID0) / ESP(spi 1)`,
      );
      const opened = step(sgw0, Op.INBOUND, atSgw2.packet);
      expectVerdict(opened, Verdict.DELIVER, end.in.id);
      expect(hex(opened.packet)).toBe(hex(inner));
    }
  });

  it('a deeper layer with an unknown key punts the peeled datagram, naming the next-hop SA; re-injected after install it opens', () => {
    const end = endSaPair({
      suite: 'aes128gcm',
      ah: 'hmac-sha256-128',
      mode: 'skip',
      id: 35,
      src: ADDR.smnCoa,
      dst: ADDR.sgw0,
      mkid: { src: ADDR.smnHome },
    });
    const hop = nexthopSaPair({
      alg: 'gmac-aes128',
      mode: 'skip',
      id: 36,
      src: ADDR.smnCoa,
      dst: ADDR.sgw0,
      mkid: { src: ADDR.smnHome },
    });
    const smn = node(sender, mirrorOf(sender), [end.out, hop.out]);
    const sgw0 = node(receiver, mirrorOf(receiver), [hop.in], { local: [ADDR.sgw0] });
    const inner = datagram(200);
    const sealed = step(smn, Op.ENCAP, inner, end.out.id);
    const wrapped = step(smn, Op.WRAP, sealed.packet, hop.out.id);
    const punted = step(sgw0, Op.INBOUND, wrapped.packet);
    expect({ verdict: punted.verdict, reason: punted.reason, sa: punted.sa }).toEqual({
      verdict: Verdict.PUNT,
      reason: Reason.unknown_key,
      sa: hop.in.id,
    });
    expect(hex(punted.packet)).toBe(hex(sealed.packet));
    sgw0.main.installSa(end.in);
    sgw0.mirror.installSa(end.in);
    const opened = step(sgw0, Op.INBOUND, punted.packet);
    expectVerdict(opened, Verdict.DELIVER, end.in.id);
    expect(hex(opened.packet)).toBe(hex(inner));
  });

  for (const coverage of COVERAGES) {
    it(`issue 10 rules, ${coverage}: nexthop_plain, relay_denied and selector agree; a plain datagram's layer covers it whole`, () => {
      const mkid = { src: ADDR.smnHome };
      const hop = nexthopSaPair({
        alg: 'gmac-aes128',
        coverage,
        mode: 'skip',
        id: 51,
        src: ADDR.smnCoa,
        dst: ADDR.sgw0,
        mkid,
      });
      const end = endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 52, src: ADDR.smnCoa, dst: ADDR.sgw0 });
      const smn = node(sender, mirrorOf(sender), [hop.out, end.out]);
      const selectors = { src: [`${ADDR.smnHome}/32`, `${ADDR.smnCoa}/32`], dst: ['10.0.0.0/24'] };
      const rules = [
        { ...hop.in, relay: false },
        { ...end.in, selectors },
      ];
      const sgw0 = node(receiver, mirrorOf(receiver), rules, {
        local: [ADDR.sgw0],
        routes: [{ prefix: '0.0.0.0/0', sa: 0 }],
      });
      for (const size of SIZES) {
        const plain = datagram(size, { dst: ADDR.ch0 });
        const punted = step(sgw0, Op.INBOUND, step(smn, Op.WRAP, plain, hop.out.id).packet);
        const puntedAs = [Verdict.PUNT, Reason.nexthop_plain, hop.in.id, hex(plain)];
        expect([punted.verdict, punted.reason, punted.sa, hex(punted.packet)]).toEqual(puntedAs);
        const toSgw2 = espDatagram(Math.max(size, 36), { dst: ADDR.sgw2 });
        const denied = step(sgw0, Op.INBOUND, step(smn, Op.WRAP, toSgw2, hop.out.id).packet);
        const deniedAs = [Verdict.PUNT, Reason.relay_denied, hop.in.id, hex(toSgw2)];
        expect([denied.verdict, denied.reason, denied.sa, hex(denied.packet)]).toEqual(deniedAs);
        const notOurs = datagram(size, { src: '10.9.9.9', dst: ADDR.ch0 });
        const selected = step(
          sgw0,
          Op.INBOUND,
          step(smn, Op.WRAP, step(smn, Op.ENCAP, notOurs, end.out.id).packet, hop.out.id).packet,
        );
        expect([selected.verdict, selected.reason, selected.sa]).toEqual([Verdict.DROP, Reason.selector, end.in.id]);
      }
    });
  }

  it('IP-in-IP: IPIP_ENCAP identical, IPIP_DECAP gives the datagram back, INBOUND punts it not_ipsec with SA 0 (no SA authenticated it)', () => {
    const ha = node(sender, mirrorOf(sender), []);
    const smn = node(receiver, mirrorOf(receiver), [], { local: [ADDR.smnCoa] });
    for (const size of SIZES) {
      const inner = datagram(size, { src: ADDR.ch0, dst: ADDR.smnHome, df: size % 2 === 1, id: size });
      const tunnelled = step(ha, Op.IPIP_ENCAP, inner, ipToU32(ADDR.ha), ipToU32(ADDR.smnCoa));
      expectVerdict(tunnelled, Verdict.FORWARD, 0, ipToU32(ADDR.smnCoa));
      expect(tunnelled.packet.length).toBe(size + 20);
      const decap = step(smn, Op.IPIP_DECAP, tunnelled.packet);
      expectVerdict(decap, Verdict.DELIVER, 0);
      expect(hex(decap.packet)).toBe(hex(inner));
      const viaInbound = step(smn, Op.INBOUND, tunnelled.packet);
      expect({
        verdict: viaInbound.verdict,
        reason: viaInbound.reason,
        sa: viaInbound.sa,
        nexthop: viaInbound.nexthop,
      }).toEqual({ verdict: Verdict.PUNT, reason: Reason.not_ipsec, sa: 0, nexthop: 0 });
      expect(hex(viaInbound.packet)).toBe(hex(inner));
    }
  });

  it('§4.5.3 <3>: HA tunnels to the CoA, SGW0 encrypts and wraps for SGW1, SGW1 relays, the SMN opens it', () => {
    const end = endSaPair({
      suite: 'aes256gcm',
      ah: 'gmac-aes128',
      mode: 'skip',
      id: 41,
      src: ADDR.sgw0,
      dst: ADDR.smnCoa,
      mkid: { dst: ADDR.smnHome },
    });
    const sgw0ToSgw1 = nexthopSaPair({ alg: 'gmac-aes128', mode: 'skip', id: 42, src: ADDR.sgw0, dst: ADDR.sgw1 });
    const sgw1ToSmn = nexthopSaPair({
      alg: 'hmac-sha256-128',
      mode: 'skip',
      id: 43,
      src: ADDR.sgw1,
      dst: ADDR.smnCoa,
      mkid: { dst: ADDR.smnHome },
    });
    const sgw0 = node(sender, mirrorOf(sender), [end.out, sgw0ToSgw1.out]);
    const sgw1 = node(receiver, mirrorOf(receiver), [sgw0ToSgw1.in, sgw1ToSmn.out], {
      local: [ADDR.sgw1],
      routes: [{ prefix: '10.1.0.0/16', sa: sgw1ToSmn.out.id }],
    });
    const smn = node(sender, mirrorOf(sender), [sgw1ToSmn.in, end.in], { local: [ADDR.smnCoa] });
    const original = datagram(300, { src: ADDR.ch0, dst: ADDR.smnHome });
    const tunnelled = step(sgw0, Op.IPIP_ENCAP, original, ipToU32(ADDR.ha), ipToU32(ADDR.smnCoa));
    const sealed = step(sgw0, Op.ENCAP, tunnelled.packet, end.out.id);
    const wrapped = step(sgw0, Op.WRAP, sealed.packet, sgw0ToSgw1.out.id);
    expect(describePacket(wrapped.packet)).toBe(
      `IPv4(${ADDR.sgw0}>${ADDR.sgw1}) / SKIP(NSID0 > NSID0) / AH[next] / ` +
        `IPv4(${ADDR.sgw0}>${ADDR.smnCoa}) / SKIP(NSID0 > NSID1 MKID ${ADDR.smnHome}) / AH[end] / ESP(spi 1)`,
    );
    const relayed = step(sgw1, Op.INBOUND, wrapped.packet);
    expectVerdict(relayed, Verdict.FORWARD, sgw0ToSgw1.in.id, ipToU32(ADDR.smnCoa));
    const opened = step(smn, Op.INBOUND, relayed.packet);
    expectVerdict(opened, Verdict.DELIVER, end.in.id);
    expect(hex(opened.packet)).toBe(hex(tunnelled.packet));
    const inner = step(smn, Op.IPIP_DECAP, opened.packet);
    expect(hex(inner.packet)).toBe(hex(original));
  });
});
