// OUTBOUND action 'tunnel' (docs/engine.md §4.2): a home agent's RFC 2003 tunnel as a policy, on both paths with
// byte-identical results — TTL − 1, then the IPIP_ENCAP header; what comes from the tunnel exit is dropped `loop`
// (also nested IP-in-IP from it); TTL <= 1 is punted unchanged — and tables with a malformed tunnel refused alike.
process.env.MIPSEC_NATIVE = '1';
import { describe, expect, it } from 'vitest';
import { Op, Reason, Verdict, type Policy } from '../../src/engine/index.js';
import type { NativeEngine } from '../../src/engine/native.js';
import { decrementTtl } from '../../src/net/ip.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { IpProto, buildIpv4, internetChecksum } from '../../src/wire/ipv4.js';
import {
  ADDR,
  IMPLS,
  datagram,
  engineWith,
  hex,
  runOne,
  type RunResult,
  outcomeOf,
  outboundOnBoth,
  closedAfterEach,
} from './fixtures.js';

const closed = closedAfterEach();

const ip = ipToU32;
const HA = ADDR.ha;
const COA = ADDR.smnCoa;
const HOME = ADDR.smnHome;
const TUNNEL: Policy = { prefix: `${HOME}/32`, action: 'tunnel', sa: 0, tunnel: { src: HA, dst: COA } };

const make = (impl: (typeof IMPLS)[number], policies: readonly Policy[]) => closed(engineWith(impl, [], { policies }));

/** The packets through OUTBOUND on both paths: identical outcomes, bytes and counters. */
function both(policies: readonly Policy[], packets: readonly Uint8Array[], table = 0): RunResult[] {
  return outboundOnBoth((impl) => make(impl, policies), packets, table);
}

/** What the JS home agent built per packet before the policy (home-agent.ts tunnel()): TTL − 1, then op IPIP_ENCAP. */
function jsHomeAgent(impl: (typeof IMPLS)[number], packet: Uint8Array): RunResult {
  const copy = packet.slice(0, (packet[2] << 8) | packet[3]);
  decrementTtl(copy, 0);
  return runOne(make(impl, []), Op.IPIP_ENCAP, copy, ip(HA), ip(COA));
}

describe("OUTBOUND action 'tunnel' (RFC 2003), native and TS", () => {
  it('TTL − 1, then the IPIP_ENCAP header: FORWARD to the tunnel exit, SA 0, exactly what the JS home agent built', () => {
    const fragment = buildIpv4(
      {
        src: ip(ADDR.ch0),
        dst: ip(HOME),
        protocol: IpProto.UDP,
        ttl: 9,
        flagsFragment: 0x2000 | 7,
        identification: 77,
      },
      new Uint8Array(64).fill(3),
    );
    const inputs = [
      ...[2, 64, 255].map((ttl) => datagram(120, { src: ADDR.ch0, dst: HOME, ttl, seed: ttl })),
      datagram(300, { src: ADDR.sgw0, dst: HOME, df: false, tos: 0xb8, id: 0xbeef }),
      Uint8Array.from([...datagram(60, { src: ADDR.ch0, dst: HOME, ttl: 30 }), 9, 9, 9]),
      fragment,
    ];
    const r = both([TUNNEL], inputs);
    for (const [i, input] of inputs.entries()) {
      const inner = input.subarray(0, (input[2] << 8) | input[3]);
      expect(outcomeOf(r[i])).toEqual({ verdict: Verdict.FORWARD, reason: Reason.none, sa: 0, nexthop: ip(COA) });
      const out = r[i].packet;
      expect(out.length, 'outer header + the datagram without trailing bytes').toBe(20 + inner.length);
      expect(internetChecksum(out, 0, 20), 'outer checksum').toBe(0);
      expect([out[1], out[8], out[9]], 'outer TOS copied, TTL 64, protocol 4').toEqual([input[1], 64, IpProto.IPIP]);
      expect(hex(out.subarray(4, 6)), 'outer identification = inner').toBe(hex(input.subarray(4, 6)));
      expect(out[6] & 0x40, 'DF copied').toBe(input[6] & 0x40);
      expect([...out.subarray(12, 20)], 'outer src HA, dst care-of').toEqual([...ipBytes(HA), ...ipBytes(COA)]);
      expect(out[20 + 8], 'inner TTL − 1').toBe(input[8] - 1);
      expect(internetChecksum(out, 20, 40), 'inner checksum still valid').toBe(0);
      expect(hex(out.subarray(40)), 'payload unchanged').toBe(hex(inner.subarray(20)));
      for (const impl of IMPLS) expect(hex(jsHomeAgent(impl, input).packet), `${impl}: as the JS HA`).toBe(hex(out));
    }
  });

  it('never tunnels what comes from the tunnel exit (also nested IP-in-IP from it, and before the TTL check): DROP loop', () => {
    const fromExit = datagram(80, { src: COA, dst: HOME });
    const fromExitTtl1 = datagram(80, { src: COA, dst: HOME, ttl: 1 });
    // IP-in-IP the care-of address sent back toward the home address (a reverse tunnel misaddressed, a reflection).
    const nested = buildIpv4(
      { src: ip(COA), dst: ip(HOME), protocol: IpProto.IPIP, ttl: 64, flagsFragment: 0, identification: 5 },
      datagram(60, { src: ADDR.ch0, dst: HOME }),
    );
    const r = both([TUNNEL], [fromExit, fromExitTtl1, nested]);
    for (const [i, input] of [fromExit, fromExitTtl1, nested].entries()) {
      expect(outcomeOf(r[i])).toEqual({ verdict: Verdict.DROP, reason: Reason.loop, sa: 0, nexthop: 0 });
      expect(hex(r[i].packet), 'unchanged').toBe(hex(input));
    }
  });

  it('TTL <= 1 is punted ttl_exceeded unchanged (the control plane decides); only the policy prefix and table', () => {
    const expired = [
      datagram(80, { src: ADDR.ch0, dst: HOME, ttl: 1 }),
      datagram(80, { src: ADDR.ch0, dst: HOME, ttl: 0 }),
    ];
    const elsewhere = datagram(80, { src: ADDR.ch0, dst: '10.0.0.101' });
    const r = both([TUNNEL], [...expired, elsewhere]);
    for (const [i, input] of expired.entries()) {
      expect(outcomeOf(r[i])).toEqual({ verdict: Verdict.PUNT, reason: Reason.ttl_exceeded, sa: 0, nexthop: 0 });
      expect(hex(r[i].packet)).toBe(hex(input));
    }
    expect(outcomeOf(r[2]).reason, 'another address: no policy').toBe(Reason.no_policy);
    const inTable3 = both([{ ...TUNNEL, table: 3 }], [datagram(80, { src: ADDR.ch0, dst: HOME })], 0);
    expect(outcomeOf(inTable3[0]).reason, 'table 0 has no tunnel').toBe(Reason.no_policy);
    const [shared] = both([{ ...TUNNEL, table: 3 }], [datagram(80, { src: ADDR.ch0, dst: HOME })], 3);
    expect(outcomeOf(shared).verdict).toBe(Verdict.FORWARD);
  });

  it('refuses a malformed tunnel with the same message on both paths, naming the policy and the field', () => {
    const at = /policy 0 \(10\.0\.0\.100\/32\): /.source;
    const cases: [unknown, RegExp][] = [
      [[{ ...TUNNEL, tunnel: undefined }], new RegExp(`${at}tunnel must be \\{ src: 'a\\.b\\.c\\.d'`)],
      [[{ ...TUNNEL, tunnel: 'x' }], new RegExp(`${at}tunnel must be`)],
      [[{ ...TUNNEL, tunnel: [HA, COA] }], new RegExp(`${at}tunnel must be`)],
      [[{ ...TUNNEL, tunnel: { dst: COA } }], new RegExp(`${at}tunnel\\.src must be a dotted IPv4 address`)],
      [[{ ...TUNNEL, tunnel: { src: HA, dst: '10.1.0' } }], new RegExp(`${at}tunnel\\.dst must be a dotted IPv4`)],
      [[{ ...TUNNEL, tunnel: { src: HA, dst: '10.1.0.300' } }], new RegExp(`${at}tunnel\\.dst must be a dotted`)],
      [[{ ...TUNNEL, tunnel: { src: HA, dst: 167837796 } }], new RegExp(`${at}tunnel\\.dst must be a dotted`)],
      [
        [{ ...TUNNEL, tunnel: { src: '0.0.0.0', dst: COA } }],
        new RegExp(`${at}tunnel\\.src must not be 0\\.0\\.0\\.0`),
      ],
      [[{ ...TUNNEL, tunnel: { src: HA, dst: '0.0.0.0' } }], new RegExp(`${at}tunnel\\.dst must not be 0\\.0\\.0\\.0`)],
      [[{ ...TUNNEL, sa: 4 }], new RegExp(`${at}sa applies to action 'protect' only \\(this policy is 'tunnel'\\)`)],
      [[{ ...TUNNEL, wrap: [4] }], new RegExp(`${at}wrap applies to action 'protect' only`)],
      [
        [{ prefix: `${HOME}/32`, action: 'pass', sa: 0, tunnel: { src: HA, dst: COA } }],
        new RegExp(`${at}tunnel applies to action 'tunnel' only \\(this policy is 'pass'\\)`),
      ],
      [[{ prefix: `${HOME}/32`, sa: 0, tunnel: { src: HA, dst: COA } }], new RegExp(`${at}tunnel applies to action`)],
      [
        [TUNNEL, { ...TUNNEL, tunnel: { src: HA, dst: ADDR.sgw0 } }],
        /policy 1 .*repeats the table, prefix and src of policy 0/,
      ],
    ];
    for (const impl of IMPLS) {
      const e = make(impl, [TUNNEL]);
      for (const [table, message] of cases)
        expect(() => e.setPolicies(table as Policy[]), `${impl} ${JSON.stringify(table)}`).toThrow(message);
      // A refused table leaves the installed one in place.
      const r = runOne(e, Op.OUTBOUND, datagram(60, { src: ADDR.ch0, dst: HOME }));
      expect([r.verdict, r.nexthop]).toEqual([Verdict.FORWARD, ip(COA)]);
    }
  });

  it("the addon checks a tunnel record too: addresses present and not 0.0.0.0, and only on action 'tunnel'", () => {
    const e = make('native', []) as NativeEngine;
    const addon = e.addonEngine as { setPolicies(flat: Uint32Array): void };
    // (table, network, length, action, sa, wrap count, src count, proto + 1, wraps…, src pairs…, [tunnel src, dst])
    const head = [0, ip(HOME), 32, 7, 0, 0, 0, 0];
    const cases: [number[], RegExp][] = [
      [[...head], /policy 0: record truncated \(wrap SA ids, src prefixes or tunnel addresses missing\)/],
      [[...head, ip(HA)], /policy 0: record truncated/],
      [[...head, 0, ip(COA)], /policy 0: tunnel\.src must be the tunnel's outer source address/],
      [[...head, ip(HA), 0], /policy 0: tunnel\.dst must be the tunnel's exit address/],
      [[0, ip(HOME), 32, 9, 0, 0, 0, 0, ip(HA), ip(COA)], /policy 0: action must be 1\.\.8/],
      [[0, ip(HOME), 32, 7, 3, 0, 0, 0, ip(HA), ip(COA)], /policy 0: sa applies to action protect only/],
    ];
    for (const [flat, message] of cases)
      expect(() => addon.setPolicies(Uint32Array.from(flat)), JSON.stringify(flat)).toThrow(message);
    // A pass record after a tunnel one: the two address words belong to the tunnel record only.
    addon.setPolicies(Uint32Array.from([...head, ip(HA), ip(COA), 0, ip('10.0.0.0'), 8, 3, 0, 0, 0, 0]));
    expect(runOne(e, Op.OUTBOUND, datagram(60, { src: ADDR.ch0, dst: HOME })).nexthop).toBe(ip(COA));
    expect(runOne(e, Op.OUTBOUND, datagram(60, { src: ADDR.ch0, dst: '10.0.0.7', ttl: 9 })).packet[8]).toBe(8);
  });
});

function ipBytes(address: string): number[] {
  return address.split('.').map(Number);
}
