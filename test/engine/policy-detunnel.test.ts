// OUTBOUND action 'detunnel' (docs/engine.md §4.2): a home agent's end of its mobile nodes' reverse tunnels (RFC
// 3024), on both paths with byte-identical results. The bindings are the table's `tunnel` policies: IP-in-IP is opened
// only from the care-of address of the home address inside (else DROP untrusted_tunnel), then sent on as it came out
// (what the JS home agent did with op IPIP_DECAP), or into another away node's tunnel.
process.env.MIPSEC_NATIVE = '1';
import { describe, expect, it } from 'vitest';
import { Op, Reason, Verdict, type Policy } from '../../src/engine/index.js';
import type { NativeEngine } from '../../src/engine/native.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { IpProto, buildIpv4, internetChecksum, setIpv4Checksum } from '../../src/wire/ipv4.js';
import {
  ADDR,
  IMPLS,
  datagram,
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

const ip = ipToU32;
const HA = ADDR.ha;
const COA = ADDR.smnCoa;
const HOME = ADDR.smnHome;
// A second mobile node, away at a care-of address of its own, and a third behind the same care-of address as the
// first (a foreign agent's: several bindings share one care-of address).
const HOME2 = '10.0.0.101';
const COA2 = '10.2.0.7';
const HOME3 = '10.0.0.102';

const tunnelTo = (home: string, careOf: string): Policy => ({
  prefix: `${home}/32`,
  action: 'tunnel',
  sa: 0,
  tunnel: { src: HA, dst: careOf },
});
const DETUNNEL: Policy = { prefix: `${HA}/32`, proto: IpProto.IPIP, action: 'detunnel', sa: 0 };
const TABLES: Policy[] = [tunnelTo(HOME, COA), tunnelTo(HOME2, COA2), tunnelTo(HOME3, COA), DETUNNEL];

const make = (impl: (typeof IMPLS)[number], policies: readonly Policy[]) => closed(engineWith(impl, [], { policies }));

/** The packets through OUTBOUND on both paths: identical outcomes, bytes and counters. */
function both(policies: readonly Policy[], packets: readonly Uint8Array[]): RunResult[] {
  return outboundOnBoth((impl) => make(impl, policies), packets);
}

/** IP-in-IP from `from` to `to` around `inner`, as a mobile node reverse-tunnels (RFC 2003 header, TTL 64). */
function tunnelled(from: string, inner: Uint8Array, o: { to?: string; fragment?: number } = {}): Uint8Array {
  const header = { src: ip(from), dst: ip(o.to ?? HA), protocol: IpProto.IPIP, ttl: 64, flagsFragment: o.fragment };
  return buildIpv4(header, inner);
}

const expectOutcome = (r: RunResult, verdict: number, reason: number, nexthop = 0) =>
  expect(outcomeOf(r)).toEqual({ verdict, reason, sa: 0, nexthop });

describe("OUTBOUND action 'detunnel' (RFC 3024 reverse tunnels at the home agent), native and TS", () => {
  it('opens a reverse tunnel from the care-of address of the home address inside: FORWARD it as IPIP_DECAP left it', () => {
    const inners = [
      datagram(120, { src: HOME, dst: ADDR.ch0, ttl: 9 }),
      datagram(300, { src: HOME, dst: '198.51.100.9', df: false, tos: 0xb8, id: 0xbeef, ttl: 1 }),
      datagram(90, { src: HOME3, dst: ADDR.ch0 }), // the other node behind the same care-of address
      datagram(64, { src: HOME, dst: HA }), // to the home agent itself: sent on to its own address, as the JS path did
    ];
    const inputs = inners.map((inner) => tunnelled(COA, inner));
    // Trailing bytes beyond the outer datagram are cut with it.
    inputs.push(Uint8Array.from([...tunnelled(COA, inners[0]), 7, 7, 7]));
    const r = both(TABLES, inputs);
    for (const [i, input] of inputs.entries()) {
      const inner = inners[i % inners.length];
      expectOutcome(r[i], Verdict.FORWARD, Reason.none, ip(inner === inners[3] ? HA : dstOf(inner)));
      expect(hex(r[i].packet), 'the datagram inside, unchanged (TTL as sent)').toBe(hex(inner));
      for (const impl of IMPLS) {
        // What the JS home agent sent per packet: op IPIP_DECAP's datagram.
        const js = runOne(make(impl, []), Op.IPIP_DECAP, input);
        expect([js.verdict, hex(js.packet)], `${impl}: as the JS HA`).toEqual([Verdict.DELIVER, hex(inner)]);
      }
    }
  });

  it('drops what no binding explains: another outer source, an unbound or foreign home address inside', () => {
    const inputs = [
      tunnelled(ADDR.sgw0, datagram(80, { src: HOME, dst: ADDR.ch0 })), // spoofed: not HOME's care-of address
      tunnelled(COA2, datagram(80, { src: HOME, dst: ADDR.ch0 })), // HOME2's care-of address, HOME inside
      tunnelled(COA, datagram(80, { src: HOME2, dst: ADDR.ch0 })), // HOME's care-of address, HOME2 inside
      tunnelled(COA, datagram(80, { src: '10.0.0.50', dst: ADDR.ch0 })), // no binding at all
      tunnelled(COA, datagram(80, { src: ADDR.ch0, dst: HOME })), // a correspondent's address inside
    ];
    const r = both(TABLES, inputs);
    for (const [i, input] of inputs.entries()) {
      expectOutcome(r[i], Verdict.DROP, Reason.untrusted_tunnel);
      expect(hex(r[i].packet), 'the refused datagram inside').toBe(hex(input.subarray(20)));
    }
    // The tunnel a reply would take must start at this home agent too: the same binding under another HA address.
    const elsewhere: Policy[] = [
      { ...tunnelTo(HOME, COA), tunnel: { src: '10.0.0.3', dst: COA } },
      { prefix: '10.0.0.0/29', proto: IpProto.IPIP, action: 'detunnel', sa: 0 },
    ];
    const [other] = both(elsewhere, [tunnelled(COA, datagram(80, { src: HOME, dst: ADDR.ch0 }))]);
    expectOutcome(other, Verdict.DROP, Reason.untrusted_tunnel);
    // Without the tunnel policies (no binding, or the HA never compiled them) nothing is opened.
    const [unbound] = both([DETUNNEL], [tunnelled(COA, datagram(80, { src: HOME, dst: ADDR.ch0 }))]);
    expectOutcome(unbound, Verdict.DROP, Reason.untrusted_tunnel);
  });

  it("relays between two away nodes: into the other's tunnel (TTL − 1, IPIP_ENCAP to its care-of address)", () => {
    const inner = datagram(100, { src: HOME, dst: HOME2, ttl: 20 });
    const [r] = both(TABLES, [tunnelled(COA, inner)]);
    expectOutcome(r, Verdict.FORWARD, Reason.none, ip(COA2));
    const out = r.packet;
    expect([...out.subarray(12, 20)], 'outer src HA, dst the other care-of').toEqual([
      ...bytesOf(HA),
      ...bytesOf(COA2),
    ]);
    expect([out[9], out[20 + 8]], 'IP-in-IP, inner TTL − 1').toEqual([IpProto.IPIP, 19]);
    expect(internetChecksum(out, 0, 20) | internetChecksum(out, 20, 40), 'both checksums valid').toBe(0);
    expect(hex(out.subarray(40)), 'payload unchanged').toBe(hex(inner.subarray(20)));
    // A node behind the same care-of address (a foreign agent's) is no loop: the source inside is a home address, not
    // the tunnel exit (RFC 2003 §3.2), so the datagram goes back into the shared care-of address's tunnel.
    const [hairpin, expired] = both(TABLES, [
      tunnelled(COA, datagram(100, { src: HOME, dst: HOME3 })),
      tunnelled(COA, datagram(100, { src: HOME, dst: HOME2, ttl: 1 })),
    ]);
    expectOutcome(hairpin, Verdict.FORWARD, Reason.none, ip(COA));
    expectOutcome(expired, Verdict.PUNT, Reason.ttl_exceeded);
    expect(hex(expired.packet), 'the datagram inside, unchanged, for ICMP 11').toBe(
      hex(datagram(100, { src: HOME, dst: HOME2, ttl: 1 })),
    );
  });

  it('takes a malformed tunnel apart as IPIP_DECAP does, punts a fragment whole, and leaves other protocols alone', () => {
    const good = datagram(80, { src: HOME, dst: ADDR.ch0 });
    const truncatedInner = tunnelled(COA, good.subarray(0, 30));
    truncatedInner[20 + 3] = 80; // inner total length says 80, 30 bytes there
    setIpv4Checksum(truncatedInner, 20);
    const ttl0 = tunnelled(COA, datagram(80, { src: HOME, dst: ADDR.ch0, ttl: 0 }));
    const badSum = tunnelled(COA, good);
    badSum[10] ^= 0xff;
    const fragment = tunnelled(COA, good, { fragment: 0x2000 });
    const udp = datagram(80, { src: COA, dst: HA }); // a registration, say: no policy, the control plane's
    const r = both(TABLES, [truncatedInner, ttl0, badSum, fragment, udp]);
    const js = IMPLS.map((impl) => runMany(make(impl, []), Op.IPIP_DECAP, [truncatedInner, ttl0]));
    expectOutcome(r[0], Verdict.DROP, Reason.bad_total_length);
    expectOutcome(r[1], Verdict.DROP, Reason.ttl_expired);
    for (const results of js) expect(results.map((x) => x.reason)).toEqual([r[0].reason, r[1].reason]);
    expectOutcome(r[2], Verdict.DROP, Reason.bad_ip_checksum);
    expectOutcome(r[3], Verdict.PUNT, Reason.fragment);
    expect(hex(r[3].packet), 'the fragment unchanged').toBe(hex(fragment));
    expectOutcome(r[4], Verdict.PUNT, Reason.no_policy);
  });

  it('refuses detunnel without proto 4 on both paths and in the addon, naming the policy and the field', () => {
    const at = /policy 0 \(10\.0\.0\.2\/32\): /.source;
    for (const impl of IMPLS) {
      const e = make(impl, TABLES);
      for (const proto of [undefined, IpProto.UDP]) {
        expect(() => e.setPolicies([{ ...DETUNNEL, proto }]), `${impl} proto ${String(proto)}`).toThrow(
          new RegExp(`${at}action 'detunnel' needs proto 4 \\(IP-in-IP\\), got ${proto ?? 'any protocol'}`),
        );
      }
      expect(() => e.setPolicies([{ ...DETUNNEL, sa: 3 }])).toThrow(/sa applies to action 'protect' only/);
      expect(() => e.setPolicies([{ ...DETUNNEL, tunnel: { src: HA, dst: COA } }])).toThrow(
        /tunnel applies to action 'tunnel' only \(this policy is 'detunnel'\)/,
      );
      // A refused table leaves the installed one in place.
      const r = runOne(e, Op.OUTBOUND, tunnelled(COA, datagram(60, { src: HOME, dst: ADDR.ch0 })));
      expect([r.verdict, r.nexthop]).toEqual([Verdict.FORWARD, ip(ADDR.ch0)]);
    }
    const addon = (make('native', []) as NativeEngine).addonEngine as { setPolicies(flat: Uint32Array): void };
    // (table, network, length, action, sa, wrap count, src count, proto + 1): proto + 1 = 0 is any protocol.
    for (const protoWord of [0, IpProto.UDP + 1])
      expect(() => addon.setPolicies(Uint32Array.from([0, ip(HA), 32, 8, 0, 0, 0, protoWord]))).toThrow(
        /policy 0: action detunnel needs proto 4 \(IP-in-IP\)/,
      );
    addon.setPolicies(Uint32Array.from([0, ip(HA), 32, 8, 0, 0, 0, IpProto.IPIP + 1]));
  });
});

function dstOf(d: Uint8Array): string {
  return [...d.subarray(16, 20)].join('.');
}

function bytesOf(address: string): number[] {
  return address.split('.').map(Number);
}
