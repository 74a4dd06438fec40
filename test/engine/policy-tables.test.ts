// OUTBOUND policy tables (docs/engine.md §4.2) on both paths: table selection by arg0, source prefixes in the given
// order, fallthrough to shorter destination prefixes, every action (protect, bypass, pass, punt, drop, inbound),
// table validation with the same messages, the addon's own record checks, and thousands of /32 policies.
process.env.MIPSEC_NATIVE = '1';
import { describe, expect, it } from 'vitest';
import { Op, Reason, Verdict, type Engine, type EngineImpl, type Policy, type SaDesc } from '../../src/engine/index.js';
import type { NativeEngine } from '../../src/engine/native.js';
import { ipToU32, u32ToIp } from '../../src/wire/addr.js';
import { IPPROTO_SKIP } from '../../src/wire/skip.js';
import { IpProto, buildIpv4, internetChecksum, updateChecksum } from '../../src/wire/ipv4.js';
import {
  ADDR,
  IMPLS,
  datagram,
  endSaPair,
  engineWith,
  hex,
  runMany,
  runOne,
  type RunResult,
  outcomeOf,
  outboundOnBoth,
  closedAfterEach,
} from './fixtures.js';

const closed = closedAfterEach();

function make(
  impl: EngineImpl,
  sas: readonly SaDesc[],
  policies: readonly Policy[],
  setup?: Parameters<typeof engineWith>[2],
): Engine {
  return closed(engineWith(impl, sas, { ...setup, policies }));
}

/** The same packets through OUTBOUND with table `table` on both paths (fresh engines): identical outcomes, bytes and counters. */
function both(
  sas: readonly SaDesc[],
  policies: readonly Policy[],
  packets: readonly Uint8Array[],
  table = 0,
  setup?: Parameters<typeof engineWith>[2],
): RunResult[] {
  return outboundOnBoth((impl) => make(impl, sas, policies, setup), packets, table);
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
const other = endSaPair({ suite: 'chacha20poly1305', mode: 'spi', id: 2, src: ADDR.smnCoa, dst: ADDR.sgw2 });
const SAS = [end.out, other.out];
const ip = ipToU32;

describe('OUTBOUND policy tables, native and TS', () => {
  it('each action: protect, bypass, pass, punt, drop, inbound; counters by reason', () => {
    const policies: Policy[] = [
      { prefix: '10.0.1.0/24', action: 'protect', sa: end.out.id },
      { prefix: '10.0.2.0/24', action: 'bypass', sa: 0 },
      { prefix: '10.0.3.0/24', action: 'pass', sa: 0 },
      { prefix: '10.0.4.0/24', action: 'punt', sa: 0 },
      { prefix: '10.0.5.0/24', action: 'drop', sa: 0 },
      { prefix: '198.18.0.0/24', action: 'inbound', sa: 0 },
    ];
    const to = (dst: string) => datagram(90, { dst, ttl: 40 });
    const sealed = runOne(make('ts', [end.out], []), Op.ENCAP, datagram(90, { dst: ADDR.ch0 }), end.out.id).packet;
    const packets = [
      to('10.0.1.9'),
      to('10.0.2.9'),
      to('10.0.3.9'),
      to('10.0.4.9'),
      to('10.0.5.9'),
      sealed,
      to('10.0.6.9'),
    ];
    const r = both([...SAS, end.in], policies, packets, 0, { local: [ADDR.sgw0] });
    expect(r.map(outcomeOf)).toEqual([
      { verdict: Verdict.FORWARD, reason: Reason.none, sa: end.out.id, nexthop: ip(ADDR.sgw0) },
      { verdict: Verdict.FORWARD, reason: Reason.none, sa: 0, nexthop: ip('10.0.2.9') },
      { verdict: Verdict.FORWARD, reason: Reason.none, sa: 0, nexthop: ip('10.0.3.9') },
      { verdict: Verdict.PUNT, reason: Reason.policy_punt, sa: 0, nexthop: 0 },
      { verdict: Verdict.DROP, reason: Reason.policy_drop, sa: 0, nexthop: 0 },
      { verdict: Verdict.DELIVER, reason: Reason.none, sa: end.in.id, nexthop: 0 },
      { verdict: Verdict.PUNT, reason: Reason.no_policy, sa: 0, nexthop: 0 },
    ]);
    expect(hex(r[0].packet)).toBe(hex(runOne(make('ts', [end.out], []), Op.ENCAP, packets[0], end.out.id).packet));
    expect(hex(r[1].packet), 'bypass: unchanged').toBe(hex(packets[1]));
    expect(r[2].packet[8], 'pass: TTL - 1').toBe(39);
    expect(hex(r[3].packet), 'punt: unchanged').toBe(hex(packets[3]));
    expect(hex(r[5].packet), 'inbound: opened').toBe(hex(datagram(90, { dst: ADDR.ch0 })));
    expect(hex(r[6].packet)).toBe(hex(packets[6]));
    for (const impl of IMPLS) {
      const e = make(impl, [...SAS, end.in], policies, { local: [ADDR.sgw0] });
      runMany(e, Op.OUTBOUND, packets);
      expect(
        [Reason.policy_punt, Reason.policy_drop, Reason.no_policy].map((k) => e.counters()[k]),
        impl,
      ).toEqual([1n, 1n, 1n]);
    }
  });

  it('pass: TTL - 1 with the RFC 1624 checksum (valid header), trailing bytes cut, fragments too; TTL <= 1 punts ttl_exceeded unchanged', () => {
    const policies: Policy[] = [{ prefix: '0.0.0.0/0', action: 'pass', sa: 0 }];
    const fragment = buildIpv4(
      {
        src: ip(ADDR.smnHome),
        dst: ip(ADDR.ch0),
        protocol: IpProto.UDP,
        ttl: 9,
        flagsFragment: 0x2000 | 7,
        identification: 77,
      },
      new Uint8Array(64).fill(3),
    );
    const inputs = [2, 64, 255].map((ttl) => datagram(120, { ttl, seed: ttl }));
    const padded = Uint8Array.from([...datagram(60, { ttl: 30 }), 9, 9, 9]);
    const expired = [datagram(80, { ttl: 1 }), datagram(80, { ttl: 0 })];
    const r = both(SAS, policies, [...inputs, padded, fragment, ...expired]);
    for (const [i, input] of [...inputs, padded.subarray(0, 60), fragment].entries()) {
      expect(outcomeOf(r[i])).toEqual({ verdict: Verdict.FORWARD, reason: Reason.none, sa: 0, nexthop: ip(ADDR.ch0) });
      const out = r[i].packet;
      expect(out.length).toBe(input.length);
      expect(out[8]).toBe(input[8] - 1);
      expect(internetChecksum(out, 0, 20), `packet ${i}: header checksum valid`).toBe(0);
      const word = (input[8] << 8) | input[9];
      expect((out[10] << 8) | out[11]).toBe(updateChecksum((input[10] << 8) | input[11], word, word - 0x100));
      expect(hex(out.subarray(20))).toBe(hex(input.subarray(20)));
      expect(hex(out.subarray(0, 8)) + hex(out.subarray(9, 10)) + hex(out.subarray(12, 20))).toBe(
        hex(input.subarray(0, 8)) + hex(input.subarray(9, 10)) + hex(input.subarray(12, 20)),
      );
    }
    for (const [k, input] of expired.entries()) {
      const got = r[inputs.length + 2 + k];
      expect(outcomeOf(got)).toEqual({ verdict: Verdict.PUNT, reason: Reason.ttl_exceeded, sa: 0, nexthop: 0 });
      expect(hex(got.packet)).toBe(hex(input));
    }
  });

  it('src prefixes: among policies of one destination prefix the first in order whose src holds the source decides', () => {
    const a: Policy = { prefix: '10.0.0.0/24', src: ['10.1.0.0/16', '10.2.0.0/16'], action: 'protect', sa: end.out.id };
    const b: Policy = { prefix: '10.0.0.0/24', src: ['10.2.5.0/24'], action: 'drop', sa: 0 };
    const c: Policy = { prefix: '10.0.0.0/24', action: 'punt', sa: 0 };
    const from = (src: string) => datagram(60, { src, dst: '10.0.0.7' });
    const packets = [from('10.1.3.3'), from('10.2.5.5'), from('10.3.0.1')];
    const reasons = (rs: RunResult[]) => rs.map((x) => [x.verdict, x.reason]);
    expect(reasons(both(SAS, [a, b, c], packets))).toEqual([
      [Verdict.FORWARD, Reason.none],
      [Verdict.FORWARD, Reason.none],
      [Verdict.PUNT, Reason.policy_punt],
    ]);
    expect(reasons(both(SAS, [b, a, c], packets))).toEqual([
      [Verdict.FORWARD, Reason.none],
      [Verdict.DROP, Reason.policy_drop],
      [Verdict.PUNT, Reason.policy_punt],
    ]);
    expect(reasons(both(SAS, [c, b, a], packets)), 'a policy without src takes every source').toEqual([
      [Verdict.PUNT, Reason.policy_punt],
      [Verdict.PUNT, Reason.policy_punt],
      [Verdict.PUNT, Reason.policy_punt],
    ]);
    expect(reasons(both(SAS, [a, b], [from('10.3.0.1')])), 'no src matches, no shorter prefix').toEqual([
      [Verdict.PUNT, Reason.no_policy],
    ]);
  });

  it('a destination prefix whose policies all miss the source falls through to the shorter prefixes', () => {
    const policies: Policy[] = [
      { prefix: '10.0.0.7/32', src: ['10.1.0.0/16'], action: 'drop', sa: 0 },
      { prefix: '10.0.0.0/24', src: ['10.2.0.0/16'], action: 'protect', sa: other.out.id },
      { prefix: '10.0.0.0/16', src: ['10.3.0.0/16', '10.4.0.0/16'], action: 'pass', sa: 0 },
      { prefix: '0.0.0.0/0', src: ['10.5.0.0/16'], action: 'punt', sa: 0 },
    ];
    const from = (src: string) => datagram(60, { src, dst: '10.0.0.7' });
    const r = both(SAS, policies, ['10.1.0.1', '10.2.0.1', '10.4.0.1', '10.5.0.1', '10.6.0.1'].map(from));
    expect(r.map((x) => [x.verdict, x.reason, x.sa])).toEqual([
      [Verdict.DROP, Reason.policy_drop, 0],
      [Verdict.FORWARD, Reason.none, other.out.id],
      [Verdict.FORWARD, Reason.none, 0],
      [Verdict.PUNT, Reason.policy_punt, 0],
      [Verdict.PUNT, Reason.no_policy, 0],
    ]);
  });

  it('OUTBOUND arg0 selects the table; a table with no policies (or no such table) punts no_policy', () => {
    const policies: Policy[] = [
      { prefix: '10.0.0.0/8', sa: end.out.id },
      { prefix: '10.0.0.0/8', table: 7, action: 'pass', sa: 0 },
      { prefix: '10.0.0.0/24', table: 0xffffffff, action: 'drop', sa: 0 },
      { prefix: '0.0.0.0/0', table: 7, src: ['192.0.2.0/24'], action: 'punt', sa: 0 },
    ];
    const d = datagram(60, { dst: '10.0.0.9' });
    const viaTable = (table: number) =>
      both(SAS, policies, [d, datagram(60, { src: '192.0.2.1', dst: '8.8.8.8' })], table).map((x) => [
        x.verdict,
        x.reason,
        x.sa,
      ]);
    expect(viaTable(0)).toEqual([
      [Verdict.FORWARD, Reason.none, end.out.id],
      [Verdict.PUNT, Reason.no_policy, 0],
    ]);
    expect(viaTable(7)).toEqual([
      [Verdict.FORWARD, Reason.none, 0],
      [Verdict.PUNT, Reason.policy_punt, 0],
    ]);
    expect(viaTable(0xffffffff)).toEqual([
      [Verdict.DROP, Reason.policy_drop, 0],
      [Verdict.PUNT, Reason.no_policy, 0],
    ]);
    expect(viaTable(3)).toEqual([
      [Verdict.PUNT, Reason.no_policy, 0],
      [Verdict.PUNT, Reason.no_policy, 0],
    ]);
  });

  it('inbound: op INBOUND (bare IP-in-IP punts not_ipsec with the peeled datagram); a fragment is punted to be reassembled', () => {
    const policies: Policy[] = [{ prefix: `${ADDR.sgw0}/32`, action: 'inbound', sa: 0 }];
    const inner = datagram(70, { dst: ADDR.ch0 });
    const ipip = buildIpv4({ src: ip(ADDR.ha), dst: ip(ADDR.sgw0), protocol: IpProto.IPIP }, inner);
    const fragment = buildIpv4(
      { src: ip(ADDR.ha), dst: ip(ADDR.sgw0), protocol: IpProto.IPIP, flagsFragment: 0x2000 },
      inner,
    );
    const plain = datagram(50, { dst: ADDR.sgw0 });
    const packets = [ipip, fragment, plain];
    const r = both([end.in], policies, packets, 0, { local: [ADDR.sgw0] });
    expect(r.map((x) => [x.verdict, x.reason, x.sa])).toEqual([
      [Verdict.PUNT, Reason.not_ipsec, 0],
      [Verdict.PUNT, Reason.fragment, 0],
      [Verdict.PUNT, Reason.not_ipsec, 0],
    ]);
    expect(hex(r[0].packet)).toBe(hex(inner));
    // The fragment as given, for the control plane to reassemble; INBOUND as an op drops it (it opens none).
    expect(hex(r[1].packet)).toBe(hex(fragment));
    for (const impl of IMPLS) {
      const direct = runMany(make(impl, [end.in], [], { local: [ADDR.sgw0] }), Op.INBOUND, packets);
      expect(direct.map(outcomeOf)).toEqual(
        r.map((x, i) => (i === 1 ? { ...outcomeOf(x), verdict: Verdict.DROP } : outcomeOf(x))),
      );
      [0, 2].forEach((i) => expect(hex(direct[i].packet)).toBe(hex(r[i].packet)));
    }
  });

  it('setPolicies refuses bad tables naming the policy and field, with the same message on both paths', () => {
    const cases: [unknown, RegExp][] = [
      [
        [{ prefix: '10.0.0.0/8', src: ['10.1.0.1/16'], action: 'pass', sa: 0 }],
        /policy 0 \(10\.0\.0\.0\/8\): src\[0\]: prefix '10\.1\.0\.1\/16' has host bits set/,
      ],
      [
        [{ prefix: '10.0.0.0/8', src: ['nonsense'], sa: 0 }],
        /policy 0 \(10\.0\.0\.0\/8\): src\[0\]: not an IPv4 prefix/,
      ],
      [
        [{ prefix: '10.0.0.0/8', src: [], sa: 0 }],
        /policy 0 \(10\.0\.0\.0\/8\): src must list 1\.\.32 source prefixes/,
      ],
      [
        [{ prefix: '10.0.0.0/8', src: Array.from({ length: 33 }, (_, i) => `10.${i}.0.0/16`), sa: 0 }],
        /policy 0 .*: src must list 1\.\.32 source prefixes .*got 33/,
      ],
      [[{ prefix: '10.0.0.0/8', src: '10.0.0.0/8', sa: 0 }], /policy 0 .*: src must list/],
      [
        [{ prefix: '10.0.0.0/8', action: 'punt', sa: 3 }],
        /policy 0 \(10\.0\.0\.0\/8\): sa applies to action 'protect' only \(this policy is 'punt'\)/,
      ],
      [
        [{ prefix: '10.0.0.0/8', action: 'pass', sa: 0, wrap: [4] }],
        /policy 0 .*: wrap applies to action 'protect' only \(this policy is 'pass'\)/,
      ],
      [
        [{ prefix: '10.0.0.0/8', action: 'protect', sa: 0 }],
        /policy 0 .*: sa must be an out SA id of role 'end' for action 'protect'/,
      ],
      [
        [{ prefix: '10.0.0.0/8', action: 'forward', sa: 0 }],
        /policy 0 .*: action must be one of protect, bypass, pass, punt, drop, inbound/,
      ],
      [[{ prefix: '10.0.0.0/8', table: -1, sa: 0 }], /policy 0 .*: table must be a table id/],
      [[{ prefix: '10.0.0.0/8', table: 1.5, sa: 0 }], /policy 0 .*: table must be a table id/],
      [[{ prefix: '10.0.0.1/8', sa: 0 }], /policy 0 \(10\.0\.0\.1\/8\): prefix: .*host bits set/],
      [
        [
          { prefix: '10.0.0.0/8', src: ['10.1.0.0/16', '10.2.0.0/16'], sa: 0 },
          { prefix: '10.0.0.0/8', src: ['10.2.0.0/16', '10.1.0.0/16'], action: 'drop', sa: 0 },
        ],
        /policy 1 \(10\.0\.0\.0\/8\) repeats the table, prefix and src of policy 0/,
      ],
      [
        [
          { prefix: '10.0.0.0/8', sa: 0 },
          { prefix: '10.0.0.0/8', src: ['0.0.0.0/0'], action: 'punt', sa: 0 },
        ],
        /policy 1 .* repeats the table, prefix and src of policy 0/,
      ],
      [
        [
          { prefix: '10.0.0.0/8', table: 4, sa: 0 },
          { prefix: '10.0.0.0/8', table: 4, action: 'drop', sa: 0 },
        ],
        /policy 1 \(10\.0\.0\.0\/8 table 4\) repeats/,
      ],
    ];
    const fine: Policy[] = [
      { prefix: '10.0.0.0/8', src: ['10.1.0.0/16'], action: 'drop', sa: 0 },
      { prefix: '10.0.0.0/8', src: ['10.1.0.0/16', '10.2.0.0/16'], action: 'punt', sa: 0 },
      { prefix: '10.0.0.0/8', src: Array.from({ length: 32 }, (_, i) => `10.${i + 10}.0.0/16`), action: 'pass', sa: 0 },
      { prefix: '10.0.0.0/8', sa: 0 },
      { prefix: '10.0.0.0/8', table: 1, sa: 0 },
    ];
    for (const impl of IMPLS) {
      const e = make(impl, SAS, fine);
      for (const [table, message] of cases)
        expect(() => e.setPolicies(table as Policy[]), `${impl} ${JSON.stringify(table)}`).toThrow(message);
      // A refused table leaves the installed one in place.
      expect(runOne(e, Op.OUTBOUND, datagram(40, { src: '10.1.0.1', dst: '10.0.0.1' })).reason).toBe(
        Reason.policy_drop,
      );
      const passed = runOne(e, Op.OUTBOUND, datagram(40, { src: '10.41.0.1', dst: '10.0.0.1', ttl: 9 }));
      expect([passed.verdict, passed.packet[8]]).toEqual([Verdict.FORWARD, 8]);
    }
  });

  it('the addon checks its own records too: every error names the policy index and field', () => {
    const e = make('native', SAS, []) as NativeEngine;
    const addon = e.addonEngine as { setPolicies(flat: Uint32Array): void };
    // (table, network, length, action, sa, wrap count, src count, proto + 1 (0 = any), wraps…, src pairs…)
    const ok = [0, ip('10.0.0.0'), 8, 2, 0, 0, 0, 0];
    const cases: [number[], RegExp][] = [
      [[...ok, 0, 0, 33, 2, 0, 0, 0, 0], /policy 1: prefix length must be 0\.\.32/],
      [[...ok, 0, 0, 0, 9, 0, 0, 0, 0], /policy 1: action must be 1\.\.8/],
      [[...ok, 0, 0, 0, 4, 5, 0, 0, 0], /policy 1: sa applies to action protect only/],
      [[...ok, 0, 0, 0, 1, 0, 0, 0, 0], /policy 1: sa must be an out SA id/],
      [[...ok, 0, 0, 0, 3, 0, 1, 0, 0, 5], /policy 1: wrap applies to action protect only/],
      [[...ok, 0, 0, 0, 1, 1, 8, 0, 0], /policy 1: wrap: at most 7 wrap SAs/],
      [[...ok, 0, 0, 0, 2, 0, 0, 33, 0], /policy 1: src: at most 32 source prefixes/],
      [[...ok, 0, 0, 0, 2, 0, 0, 0, 257], /policy 1: proto must be an IPv4 protocol number 0\.\.255/],
      [
        [...ok, 0, 0, 0, 2, 0, 0, 1, 0, ip('10.0.0.1'), 8],
        /policy 1: src\[0\] must be a\.b\.c\.d\/0\.\.32 without host bits/,
      ],
      [[...ok, 0, 0, 0, 2, 0, 0, 1, 0, 0, 40], /policy 1: src\[0\] prefix length must be 0\.\.32/],
      [[...ok, 0, ip('10.0.0.1'), 8, 2, 0, 0, 0, 0], /policy 1: prefix must be a\.b\.c\.d\/0\.\.32 without host bits/],
      [[...ok, 0, 0, 0, 2, 0, 0, 2, 0, 0], /policy 1: record truncated/],
      [[...ok, 0, 0], /policy 1: record truncated/],
      [[...ok, ...ok], /policy 1: repeats the table, prefix and src of policy 0/],
    ];
    for (const [flat, message] of cases)
      expect(() => addon.setPolicies(Uint32Array.from(flat)), JSON.stringify(flat)).toThrow(message);
    // The same table, prefix and src for another protocol is another policy.
    addon.setPolicies(Uint32Array.from([...ok, 0, ip('10.0.0.0'), 8, 2, 0, 0, 0, 7]));
    addon.setPolicies(Uint32Array.from([...ok, 5, ip('10.0.0.0'), 8, 5, 0, 0, 1, 0, ip('10.1.0.0'), 16]));
    expect(runOne(e, Op.OUTBOUND, datagram(40, { src: '10.1.0.1', dst: '10.0.0.1' }), 5).reason).toBe(
      Reason.policy_drop,
    );
  });

  it('pass and SKIP: only a policy naming SKIP passes a layer, whole and with a header that parses; a general pass punts it', () => {
    const sealed = runOne(make('native', SAS, []), Op.ENCAP, datagram(100), end.out.id).packet;
    expect(sealed[9]).toBe(IPPROTO_SKIP);
    const withHeader = (edit: (p: Uint8Array) => void) => {
      const p = sealed.slice();
      edit(p);
      p[10] = p[11] = 0;
      const sum = internetChecksum(p, 0, 20);
      p[10] = sum >> 8;
      p[11] = sum & 0xff;
      return p;
    };
    const badVersion = withHeader((p) => (p[20] = 0x20));
    const fragment = withHeader((p) => (p[6] |= 0x20));
    const truncated = buildIpv4(
      { src: ip(ADDR.smnCoa), dst: ip(ADDR.sgw0), protocol: IPPROTO_SKIP, ttl: 30 },
      new Uint8Array(6),
    );
    const packets = [sealed, badVersion, fragment, truncated];
    const general: Policy[] = [{ prefix: '0.0.0.0/0', action: 'pass', sa: 0 }];
    for (const [i, r] of both(SAS, general, packets).entries()) {
      expect(outcomeOf(r), `packet ${i}`).toMatchObject({
        verdict: Verdict.PUNT,
        reason: i === 2 ? Reason.fragment : Reason.policy_punt,
      });
      expect(hex(r.packet)).toBe(hex(packets[i]));
    }
    const skipPass: Policy[] = [{ prefix: '198.18.0.0/16', proto: IPPROTO_SKIP, action: 'pass', sa: 0 }];
    const [passed, unreadable, fragmented, short] = both(SAS, skipPass, packets);
    expect(outcomeOf(passed)).toEqual({ verdict: Verdict.FORWARD, reason: Reason.none, sa: 0, nexthop: ip(ADDR.sgw0) });
    expect(passed.packet[8]).toBe(sealed[8] - 1);
    expect(hex(passed.packet.subarray(20))).toBe(hex(sealed.subarray(20)));
    expect(outcomeOf(unreadable)).toMatchObject({ verdict: Verdict.DROP, reason: Reason.bad_skip });
    expect(outcomeOf(fragmented)).toMatchObject({ verdict: Verdict.PUNT, reason: Reason.fragment });
    expect(outcomeOf(short)).toMatchObject({ verdict: Verdict.DROP, reason: Reason.truncated });
  });

  it('proto: a policy for one IPv4 protocol takes only its datagrams; the others fall through to the next policy of the prefix, then to shorter prefixes', () => {
    const tcpPass: Policy = { prefix: '10.0.0.100/32', proto: IpProto.TCP, action: 'pass', sa: 0 };
    const icmpDrop: Policy = { prefix: '10.0.0.100/32', proto: IpProto.ICMP, action: 'drop', sa: 0 };
    const rest: Policy = { prefix: '10.0.0.100/32', action: 'punt', sa: 0 };
    const shorter: Policy = { prefix: '10.0.0.0/24', proto: IpProto.UDP, action: 'bypass', sa: 0 };
    const of = (protocol: number) =>
      buildIpv4({ src: ip('198.18.9.10'), dst: ip('10.0.0.100'), protocol, ttl: 30 }, new Uint8Array(40).fill(7));
    const packets = [of(IpProto.TCP), of(IpProto.ICMP), of(IpProto.UDP), of(IpProto.ESP), of(IpProto.IPIP)];
    const reasons = (rs: RunResult[]) => rs.map((x) => [x.verdict, x.reason]);
    expect(reasons(both(SAS, [tcpPass, icmpDrop, rest, shorter], packets))).toEqual([
      [Verdict.FORWARD, Reason.none],
      [Verdict.DROP, Reason.policy_drop],
      [Verdict.PUNT, Reason.policy_punt],
      [Verdict.PUNT, Reason.policy_punt],
      [Verdict.PUNT, Reason.policy_punt],
    ]);
    // Without the catch-all the /32 holds nothing for UDP, ESP and IP-in-IP: the /24 (UDP only) decides, else no policy.
    expect(reasons(both(SAS, [tcpPass, icmpDrop, shorter], packets))).toEqual([
      [Verdict.FORWARD, Reason.none],
      [Verdict.DROP, Reason.policy_drop],
      [Verdict.FORWARD, Reason.none],
      [Verdict.PUNT, Reason.no_policy],
      [Verdict.PUNT, Reason.no_policy],
    ]);
    // The same prefix and src for two protocols (and for any) are three policies; a repeat of one is refused.
    for (const impl of IMPLS) {
      const e = make(impl, SAS, []);
      expect(() => e.setPolicies([tcpPass, { ...tcpPass, action: 'drop' }])).toThrow(/repeats the table, prefix/);
      for (const bad of [256, -1, 1.5])
        expect(() => e.setPolicies([{ ...tcpPass, proto: bad }])).toThrow(/proto must be an IPv4 protocol number/);
    }
  });

  it('thousands of /32 policies in two tables install and each is found (with a /24 behind them)', () => {
    const n = 5000;
    const host = (i: number) => u32ToIp(ip('10.128.0.0') + i);
    const policies: Policy[] = [];
    for (let i = 0; i < n; i++) {
      policies.push({ prefix: `${host(i)}/32`, action: (['pass', 'punt', 'drop'] as const)[i % 3], sa: 0 });
      policies.push({
        prefix: `${host(i)}/32`,
        table: 9,
        src: [`${u32ToIp(ip('10.1.0.0') + (i % 256) * 256)}/24`],
        action: i % 2 ? 'punt' : 'drop',
        sa: 0,
      });
    }
    policies.push({ prefix: '10.128.0.0/9', table: 9, action: 'pass', sa: 0 });
    const packets = Array.from({ length: n }, (_, i) => datagram(40, { dst: host(i), src: `10.1.${(i * 7) % 256}.1` }));
    packets.push(datagram(40, { dst: host(n) }));
    const started = performance.now();
    const table0 = both(SAS, policies, packets, 0);
    const table9 = both(SAS, policies, packets, 9);
    const elapsed = performance.now() - started;
    table0.slice(0, n).forEach((r, i) =>
      expect([i, r.verdict, r.reason], host(i)).toEqual([
        i,
        ...[
          [Verdict.FORWARD, Reason.none],
          [Verdict.PUNT, Reason.policy_punt],
          [Verdict.DROP, Reason.policy_drop],
        ][i % 3],
      ]),
    );
    expect(table0[n].reason).toBe(Reason.no_policy);
    table9.slice(0, n).forEach((r, i) => {
      // The /32's src matches when the sender's /24 is the one the policy names; else the /9 passes it.
      const matches = (i * 7) % 256 === i % 256;
      const want = matches
        ? i % 2
          ? [Verdict.PUNT, Reason.policy_punt]
          : [Verdict.DROP, Reason.policy_drop]
        : [Verdict.FORWARD, Reason.none];
      expect([i, r.verdict, r.reason]).toEqual([i, ...want]);
    });
    expect(table9[n].verdict).toBe(Verdict.FORWARD);
    // Four engines, 20,000 lookups and 10,001 policies installed four times: seconds, not minutes, on a loaded machine.
    expect(elapsed).toBeLessThan(30_000);
  });
});
