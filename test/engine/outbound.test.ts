// OUTBOUND (docs/engine.md §2, §4.2) on both paths: policy lookup by longest prefix, ENCAP + each WRAP byte for
// byte as the separate ops produce them, bypass, no_policy punts, failures, and table validation.
process.env.MIPSEC_NATIVE = '1';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Batch,
  COUNTER_SLOTS,
  Op,
  Reason,
  Verdict,
  type Engine,
  type EngineImpl,
  type Policy,
  type SaDesc,
} from '../../src/engine/index.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { IPV4_FLAG_MF, setIpv4Checksum } from '../../src/wire/ipv4.js';
import {
  ADDR,
  IMPLS,
  datagram,
  diffBytes,
  endSaPair,
  engineWith,
  hex,
  nexthopSaPair,
  runMany,
  runOne,
  type RunResult,
  outcomeOf,
} from './fixtures.js';

const opened: Engine[] = [];
afterEach(() => {
  for (const e of opened.splice(0)) e.close();
});

function make(
  impl: EngineImpl,
  sas: readonly SaDesc[],
  policies: readonly Policy[],
  setup?: Parameters<typeof engineWith>[2],
): Engine {
  const e = engineWith(impl, sas, setup);
  e.setPolicies(policies);
  opened.push(e);
  return e;
}

/** The same run on both impls: identical outcome and bytes. Returns the native result. */
function both(run: (impl: EngineImpl) => RunResult): RunResult {
  const [ts, native] = IMPLS.map(run);
  expect(outcomeOf(ts), 'ts vs native outcome').toEqual(outcomeOf(native));
  expect(hex(ts.packet), `ts vs native bytes: ${diffBytes(ts.packet, native.packet)}`).toBe(hex(native.packet));
  return native;
}

/** One OUTBOUND in a slot with `headroom` bytes in front (stacked layers need more than the default 256). */
function outboundWithHeadroom(engine: Engine, packet: Uint8Array, headroom: number): RunResult {
  const batch = new Batch({ capacity: 1, headroom });
  batch.push(Op.OUTBOUND, packet);
  engine.process(batch);
  const r = batch.result(0);
  return { ...r, packet: Uint8Array.from(r.packet) };
}

const end = endSaPair({
  suite: 'aes128gcm',
  ah: 'gmac-aes128',
  mode: 'skip',
  id: 1,
  src: ADDR.smnCoa,
  dst: ADDR.sgw0,
  mkid: { src: ADDR.smnHome },
});
const endSpi = endSaPair({ suite: 'chacha20poly1305', mode: 'spi', id: 2, src: ADDR.smnCoa, dst: ADDR.sgw2 });
const toSgw2 = nexthopSaPair({
  alg: 'hmac-sha256-128',
  coverage: 'headers',
  mode: 'skip',
  id: 3,
  src: ADDR.smnCoa,
  dst: ADDR.sgw2,
  mkid: { src: ADDR.smnHome },
});
const toSgw1 = nexthopSaPair({ alg: 'gmac-aes128', mode: 'spi', id: 4, src: ADDR.smnCoa, dst: ADDR.sgw1 });
const OUT_SAS = [end.out, endSpi.out, toSgw2.out, toSgw1.out];

describe('OUTBOUND, native and TS', () => {
  it('longest prefix wins; ENCAP output equals the ENCAP op byte for byte and the peer opens it', () => {
    const policies: Policy[] = [
      { prefix: '10.0.0.0/8', sa: endSpi.out.id },
      { prefix: '10.0.0.0/24', sa: end.out.id },
    ];
    for (const size of [20, 21, 64, 1400]) {
      const inner = datagram(size, { dst: ADDR.ch0 });
      const viaPolicy = both((impl) => runOne(make(impl, OUT_SAS, policies), Op.OUTBOUND, inner));
      expect(outcomeOf(viaPolicy)).toEqual({
        verdict: Verdict.FORWARD,
        reason: Reason.none,
        sa: end.out.id,
        nexthop: ipToU32(ADDR.sgw0),
      });
      const viaOp = runOne(make('ts', OUT_SAS, []), Op.ENCAP, inner, end.out.id);
      expect(hex(viaPolicy.packet)).toBe(hex(viaOp.packet));
      for (const impl of IMPLS) {
        const opened = runOne(make(impl, [end.in], [], { local: [ADDR.sgw0] }), Op.INBOUND, viaPolicy.packet);
        expect(outcomeOf(opened)).toEqual({ verdict: Verdict.DELIVER, reason: Reason.none, sa: end.in.id, nexthop: 0 });
        expect(hex(opened.packet)).toBe(hex(inner));
      }
      const shorter = both((impl) =>
        runOne(make(impl, OUT_SAS, policies), Op.OUTBOUND, datagram(size, { dst: '10.7.0.1' })),
      );
      expect(outcomeOf(shorter)).toEqual({
        verdict: Verdict.FORWARD,
        reason: Reason.none,
        sa: endSpi.out.id,
        nexthop: ipToU32(ADDR.sgw2),
      });
    }
  });

  it('stacked wraps, innermost first: equal to ENCAP, WRAP, WRAP; the gateways peel them to the datagram', () => {
    const policies: Policy[] = [{ prefix: '0.0.0.0/0', sa: end.out.id, wrap: [toSgw2.out.id, toSgw1.out.id] }];
    const inner = datagram(300);
    const cramped = both((impl) => runOne(make(impl, OUT_SAS, policies), Op.OUTBOUND, inner));
    expect(outcomeOf(cramped)).toEqual({
      verdict: Verdict.DROP,
      reason: Reason.no_room,
      sa: toSgw1.out.id,
      nexthop: 0,
    });
    const stacked = both((impl) => outboundWithHeadroom(make(impl, OUT_SAS, policies), inner, 512));
    expect(outcomeOf(stacked)).toEqual({
      verdict: Verdict.FORWARD,
      reason: Reason.none,
      sa: end.out.id,
      nexthop: ipToU32(ADDR.sgw1),
    });
    const manual = make('native', OUT_SAS, []);
    const sealed = runOne(manual, Op.ENCAP, inner, end.out.id);
    const once = runOne(manual, Op.WRAP, sealed.packet, toSgw2.out.id);
    const twice = runOne(manual, Op.WRAP, once.packet, toSgw1.out.id);
    expect(hex(stacked.packet)).toBe(hex(twice.packet));
    for (const impl of IMPLS) {
      const sgw1 = make(impl, [toSgw1.in], [], { local: [ADDR.sgw1], routes: [{ prefix: '0.0.0.0/0', sa: 0 }] });
      const atSgw1 = runOne(sgw1, Op.INBOUND, stacked.packet);
      expect(outcomeOf(atSgw1)).toEqual({
        verdict: Verdict.FORWARD,
        reason: Reason.none,
        sa: toSgw1.in.id,
        nexthop: ipToU32(ADDR.sgw2),
      });
      const sgw2 = make(impl, [toSgw2.in, end.in], [], { local: [ADDR.sgw2, ADDR.sgw0] });
      const atSgw2 = runOne(sgw2, Op.INBOUND, atSgw1.packet);
      expect(outcomeOf(atSgw2)).toEqual({ verdict: Verdict.DELIVER, reason: Reason.none, sa: end.in.id, nexthop: 0 });
      expect(hex(atSgw2.packet)).toBe(hex(inner));
    }
    // A single wrap may be given as a number.
    const single = both((impl) =>
      runOne(make(impl, OUT_SAS, [{ prefix: '10.0.0.0/16', sa: end.out.id, wrap: toSgw1.out.id }]), Op.OUTBOUND, inner),
    );
    expect(outcomeOf(single)).toEqual({
      verdict: Verdict.FORWARD,
      reason: Reason.none,
      sa: end.out.id,
      nexthop: ipToU32(ADDR.sgw1),
    });
  });

  it('protect with sa 0: the wraps alone, equal to WRAP, WRAP, named by the first; the gateways peel them', () => {
    const policies: Policy[] = [
      { prefix: '0.0.0.0/0', action: 'protect', sa: 0, wrap: [toSgw2.out.id, toSgw1.out.id] },
      { prefix: '10.9.0.0/16', action: 'protect', sa: 0, wrap: toSgw1.out.id },
    ];
    const inner = datagram(300);
    const stacked = both((impl) => outboundWithHeadroom(make(impl, OUT_SAS, policies), inner, 512));
    expect(outcomeOf(stacked)).toEqual({
      verdict: Verdict.FORWARD,
      reason: Reason.none,
      sa: toSgw2.out.id,
      nexthop: ipToU32(ADDR.sgw1),
    });
    const manual = make('native', OUT_SAS, []);
    const once = runOne(manual, Op.WRAP, inner, toSgw2.out.id);
    const twice = runOne(manual, Op.WRAP, once.packet, toSgw1.out.id);
    expect(hex(stacked.packet)).toBe(hex(twice.packet));
    for (const impl of IMPLS) {
      const sgw1 = make(impl, [toSgw1.in], [], { local: [ADDR.sgw1], routes: [{ prefix: '0.0.0.0/0', sa: 0 }] });
      const atSgw1 = runOne(sgw1, Op.INBOUND, stacked.packet);
      expect(outcomeOf(atSgw1)).toMatchObject({ verdict: Verdict.FORWARD, nexthop: ipToU32(ADDR.sgw2) });
      // Under the last Next-hop layer a plain datagram: the engine never delivers it on its own.
      const sgw2 = make(impl, [toSgw2.in], [], { local: [ADDR.sgw2] });
      const atSgw2 = runOne(sgw2, Op.INBOUND, atSgw1.packet);
      expect(outcomeOf(atSgw2)).toEqual({
        verdict: Verdict.PUNT,
        reason: Reason.nexthop_plain,
        sa: toSgw2.in.id,
        nexthop: 0,
      });
      expect(hex(atSgw2.packet)).toBe(hex(inner));
    }
    const single = both((impl) =>
      runOne(make(impl, OUT_SAS, policies), Op.OUTBOUND, datagram(300, { dst: '10.9.1.1' })),
    );
    expect(outcomeOf(single)).toEqual({
      verdict: Verdict.FORWARD,
      reason: Reason.none,
      sa: toSgw1.out.id,
      nexthop: ipToU32(ADDR.sgw1),
    });
    // The chain's maxPackets is the wraps': a spent one punts `rekey` before anything is sealed, naming it.
    const spent = both((impl) => {
      const e = make(impl, [end.out, { ...toSgw1.out, maxPackets: 1 }], policies);
      runOne(e, Op.OUTBOUND, datagram(300, { dst: '10.9.1.1' }));
      return runOne(e, Op.OUTBOUND, datagram(300, { dst: '10.9.1.1' }));
    });
    expect(outcomeOf(spent)).toEqual({ verdict: Verdict.PUNT, reason: Reason.rekey, sa: toSgw1.out.id, nexthop: 0 });
    expect(hex(spent.packet)).toBe(hex(datagram(300, { dst: '10.9.1.1' })));
    // A wrap SA that is missing or of role end fails in its WRAP, as with an End-End SA in front.
    for (const wrap of [77, end.out.id]) {
      const failed = both((impl) =>
        runOne(make(impl, OUT_SAS, [{ prefix: '0.0.0.0/0', action: 'protect', sa: 0, wrap }]), Op.OUTBOUND, inner),
      );
      expect([failed.verdict, failed.reason]).toEqual([Verdict.DROP, Reason.no_sa]);
    }
  });

  it("a fragment meets its datagram's policy; one for INBOUND or the wraps alone is punted as fragment, unchanged", () => {
    const fragment = (dst: string, flagsFragment: number) => {
      const d = datagram(600, { dst, df: false });
      d[6] = flagsFragment >> 8;
      d[7] = flagsFragment & 0xff;
      setIpv4Checksum(d, 0, 20);
      return d;
    };
    const policies: Policy[] = [
      { prefix: '10.0.0.0/24', sa: end.out.id },
      { prefix: '10.9.0.0/16', action: 'protect', sa: 0, wrap: toSgw1.out.id },
      { prefix: '10.8.0.0/16', action: 'inbound', sa: 0 },
      { prefix: '10.7.0.0/16', action: 'pass', sa: 0 },
    ];
    for (const flagsFragment of [IPV4_FLAG_MF, IPV4_FLAG_MF | 74, 148]) {
      // Under an End-End layer it is sealed as a datagram is, and the peer opens and delivers it as it was.
      const first = fragment(ADDR.ch0, flagsFragment);
      const sealed = both((impl) => runOne(make(impl, OUT_SAS, policies), Op.OUTBOUND, first));
      expect(outcomeOf(sealed)).toMatchObject({ verdict: Verdict.FORWARD, sa: end.out.id });
      for (const impl of IMPLS) {
        const opened = runOne(make(impl, [end.in], [], { local: [ADDR.sgw0] }), Op.INBOUND, sealed.packet);
        expect(outcomeOf(opened)).toEqual({ verdict: Verdict.DELIVER, reason: Reason.none, sa: end.in.id, nexthop: 0 });
        expect(hex(opened.packet)).toBe(hex(first));
      }
      const passed = both((impl) =>
        runOne(make(impl, OUT_SAS, policies), Op.OUTBOUND, fragment('10.7.0.1', flagsFragment)),
      );
      expect(outcomeOf(passed)).toMatchObject({ verdict: Verdict.FORWARD, sa: 0 });
      for (const dst of ['10.9.0.1', '10.8.0.1']) {
        const given = fragment(dst, flagsFragment);
        const punted = both((impl) => runOne(make(impl, OUT_SAS, policies), Op.OUTBOUND, given));
        expect(outcomeOf(punted)).toEqual({ verdict: Verdict.PUNT, reason: Reason.fragment, sa: 0, nexthop: 0 });
        expect(hex(punted.packet)).toBe(hex(given));
      }
    }
    // Whole, the same datagrams take their policy's way.
    const whole = both((impl) => runOne(make(impl, OUT_SAS, policies), Op.OUTBOUND, fragment('10.9.0.1', 0)));
    expect(outcomeOf(whole)).toMatchObject({ verdict: Verdict.FORWARD, sa: toSgw1.out.id });
  });

  it('bypass (sa 0) forwards the datagram as it is, trailing bytes cut; no match punts no_policy unchanged', () => {
    const policies: Policy[] = [
      { prefix: '10.0.0.20/32', sa: 0 },
      { prefix: '192.0.2.0/24', sa: end.out.id },
    ];
    const inner = datagram(80, { dst: ADDR.ch0 });
    const padded = Uint8Array.from([...inner, 1, 2, 3]);
    const bypass = both((impl) => runOne(make(impl, OUT_SAS, policies), Op.OUTBOUND, padded));
    expect(outcomeOf(bypass)).toEqual({
      verdict: Verdict.FORWARD,
      reason: Reason.none,
      sa: 0,
      nexthop: ipToU32(ADDR.ch0),
    });
    expect(hex(bypass.packet)).toBe(hex(inner));
    const miss = datagram(80, { dst: ADDR.ha });
    const punted = both((impl) => runOne(make(impl, OUT_SAS, policies), Op.OUTBOUND, miss));
    expect(outcomeOf(punted)).toEqual({ verdict: Verdict.PUNT, reason: Reason.no_policy, sa: 0, nexthop: 0 });
    expect(hex(punted.packet)).toBe(hex(miss));
    const empty = both((impl) => runOne(make(impl, OUT_SAS, []), Op.OUTBOUND, miss));
    expect(empty.reason).toBe(Reason.no_policy);
  });

  it('failures: malformed datagram, missing end or wrap SA, a wrap SA of the wrong role; counters agree', () => {
    const policies: Policy[] = [
      { prefix: '10.0.0.0/24', sa: end.out.id, wrap: 77 },
      { prefix: '10.0.1.0/24', sa: 78 },
      { prefix: '10.0.2.0/24', sa: end.out.id, wrap: endSpi.out.id },
      { prefix: '10.0.3.0/24', sa: toSgw1.out.id },
    ];
    const bad = datagram(60);
    bad[0] = 0x65;
    const packets = [
      datagram(60, { dst: '10.0.0.9' }),
      datagram(60, { dst: '10.0.1.9' }),
      datagram(60, { dst: '10.0.2.9' }),
      datagram(60, { dst: '10.0.3.9' }),
      bad,
      datagram(60, { dst: '10.9.9.9' }),
    ];
    const counters: BigUint64Array[] = [];
    const results = IMPLS.map((impl) => {
      const e = make(impl, OUT_SAS, policies);
      const r = runMany(e, Op.OUTBOUND, packets);
      counters.push(e.counters().slice(0, COUNTER_SLOTS));
      return r;
    });
    expect(results[0].map(outcomeOf)).toEqual(results[1].map(outcomeOf));
    results[0].forEach((r, i) => expect(hex(r.packet), `packet ${i}`).toBe(hex(results[1][i].packet)));
    expect(results[1].map((r) => [r.verdict, r.reason])).toEqual([
      [Verdict.DROP, Reason.no_sa],
      [Verdict.DROP, Reason.no_sa],
      [Verdict.DROP, Reason.no_sa],
      [Verdict.DROP, Reason.no_sa],
      [Verdict.DROP, Reason.bad_ip_version],
      [Verdict.PUNT, Reason.no_policy],
    ]);
    expect(counters[0]).toEqual(counters[1]);
    expect(counters[1][Reason.no_policy]).toBe(1n);
    expect(counters[1][Reason.no_sa]).toBe(4n);
  });

  it('setPolicies refuses bad tables with the same message on both paths; a new table replaces the old', () => {
    const cases: [unknown, RegExp][] = [
      [[{ prefix: '10.0.0.1/8', sa: 1 }], /host bits set/],
      [[{ prefix: '10.0.0.0/8', sa: -1 }], /policy 0 \(10\.0\.0\.0\/8\): sa must be an SA id/],
      [
        [{ prefix: '10.0.0.0/8', sa: 0, wrap: 3 }],
        /policy 0 \(10\.0\.0\.0\/8\): wrap applies to action 'protect' only \(this policy is 'bypass', sa 0\)/,
      ],
      [[{ prefix: '10.0.0.0/8', sa: 1, wrap: [3, 0] }], /wrap\[1\] must be an SA id/],
      [
        [{ prefix: '10.0.0.0/8', action: 'protect', sa: 0, wrap: [] }],
        /policy 0 .*: sa must be an out SA id of role 'end' for action 'protect', or 0 with wrap/,
      ],
      [[{ prefix: '10.0.0.0/8', sa: 1, wrap: [3, 3, 3, 3, 3, 3, 3, 3] }], /at most 7 wrap SAs/],
      [
        [
          { prefix: '10.0.0.0/8', sa: 1 },
          { prefix: '10.0.0.0/8', sa: 2 },
        ],
        /policy 1 .* repeats the table, prefix and src of policy 0/,
      ],
    ];
    for (const impl of IMPLS) {
      const e = make(impl, OUT_SAS, []);
      for (const [table, message] of cases)
        expect(() => e.setPolicies(table as Policy[]), `${impl} ${JSON.stringify(table)}`).toThrow(message);
      e.setPolicies([{ prefix: '0.0.0.0/0', sa: end.out.id }]);
      expect(runOne(e, Op.OUTBOUND, datagram(40)).verdict).toBe(Verdict.FORWARD);
      e.setPolicies([]);
      expect(runOne(e, Op.OUTBOUND, datagram(40)).reason).toBe(Reason.no_policy);
    }
  });
});
