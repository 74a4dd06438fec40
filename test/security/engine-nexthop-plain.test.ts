// Issue 10 hole 3, the engine's part: "the engine relays anything under its own Next-hop AH". After a verified
// Next-hop layer only SKIP/AH/ESP goes on in the engine (peeled when local, relayed by route when not); a plain
// datagram or IP-in-IP under a Next-hop layer alone is punted `nexthop_plain` for the role's policy (draft §3.2
// step 2). Also issue 11's per-SA may-relay flag: an in next-hop SA with `relay: false` never relays.
process.env.MIPSEC_NATIVE = '1';
import { afterEach, describe, expect, it } from 'vitest';
import { Op, Reason, Verdict, type Engine, type SaDesc } from '../../src/engine/index.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { IpProto, buildIpv4 } from '../../src/wire/ipv4.js';
import { ADDR, datagram, endSaPair, engineWith, espDatagram, hex, nexthopSaPair, runOne } from '../engine/fixtures.js';

const opened: Engine[] = [];
afterEach(() => {
  for (const e of opened.splice(0)) e.close();
});

/** An address behind SGW2, reached through the out next-hop SA towards SGW2. */
const BEHIND_SGW2 = '198.18.2.77';
/** An inside host of SGW0's region that the sender claims to be. */
const SPOOFED_INSIDE = '10.0.0.55';

const hopIn = nexthopSaPair({
  alg: 'gmac-aes128',
  mode: 'skip',
  id: 301,
  src: ADDR.smnCoa,
  dst: ADDR.sgw0,
  mkid: { src: ADDR.smnHome },
});
const hopOut = nexthopSaPair({ alg: 'hmac-sha256-128', mode: 'spi', id: 302, src: ADDR.sgw0, dst: ADDR.sgw2 });
const end = endSaPair({
  suite: 'aes128gcm',
  mode: 'skip',
  id: 303,
  src: ADDR.smnCoa,
  dst: ADDR.sgw0,
  mkid: { src: ADDR.smnHome },
});

function ipip(inner: Uint8Array, dst: string): Uint8Array {
  return buildIpv4({ src: ipToU32(ADDR.smnCoa), dst: ipToU32(dst), protocol: IpProto.IPIP }, inner);
}

/** The SMN (sender) and SGW0 (receiver: its region 10.0.0.0/24 forwarded as is, SGW2's net relayed). */
function cast(impl: 'native' | 'ts', inbound: SaDesc = hopIn.in) {
  const smn = engineWith(impl, [hopIn.out, end.out]);
  const sgw0 = engineWith(impl, [inbound, hopOut.out, end.in], {
    local: [ADDR.sgw0],
    routes: [
      { prefix: '10.0.0.0/24', sa: 0 },
      { prefix: '198.18.2.0/24', sa: hopOut.out.id },
    ],
  });
  opened.push(smn, sgw0);
  const wrap = (d: Uint8Array) => runOne(smn, Op.WRAP, d, hopIn.out.id).packet;
  return { smn, sgw0, wrap };
}

describe.each(['native', 'ts'] as const)('[%s] engine: what a Next-hop layer alone protects', (impl) => {
  it('hole 3: a plain datagram or IP-in-IP under a Next-hop layer alone is punted nexthop_plain, never delivered or relayed', () => {
    const { sgw0, wrap } = cast(impl);
    const spoofedToCh0 = datagram(80, { src: SPOOFED_INSIDE, dst: ADDR.ch0 });
    const cases: [string, Uint8Array][] = [
      ['plain, for SGW0 itself (was: delivered)', datagram(100, { src: SPOOFED_INSIDE, dst: ADDR.sgw0 })],
      ['plain, for an inside host (was: forwarded as is)', datagram(100, { src: SPOOFED_INSIDE, dst: ADDR.ch0 })],
      ["plain, for a host behind SGW2 (was: relayed under SGW0's own layer)", datagram(100, { dst: BEHIND_SGW2 })],
      ['IP-in-IP to SGW0 around a plain datagram (was: peeled and delivered)', ipip(spoofedToCh0, ADDR.sgw0)],
      ['IP-in-IP to an inside host (was: forwarded as is)', ipip(spoofedToCh0, ADDR.ch0)],
    ];
    for (const [what, d] of cases) {
      const r = runOne(sgw0, Op.INBOUND, wrap(d));
      expect({ what, verdict: r.verdict, reason: r.reason, sa: r.sa, packet: hex(r.packet) }).toEqual({
        what,
        verdict: Verdict.PUNT,
        reason: Reason.nexthop_plain,
        sa: hopIn.in.id,
        packet: hex(d),
      });
    }
    expect(sgw0.counters()[Reason.nexthop_plain]).toBe(BigInt(cases.length));
  });

  it('hole 3: SKIP/AH/ESP under a Next-hop layer still goes on in the engine: peeled when local, relayed or forwarded by route', () => {
    const { smn, sgw0, wrap } = cast(impl);
    const endLayer = runOne(smn, Op.ENCAP, datagram(90, { dst: ADDR.ch0 }), end.out.id).packet;
    const peeled = runOne(sgw0, Op.INBOUND, wrap(endLayer));
    expect([peeled.verdict, peeled.sa, hex(peeled.packet)]).toEqual([
      Verdict.DELIVER,
      end.in.id,
      hex(datagram(90, { dst: ADDR.ch0 })),
    ]);

    const toSgw2 = espDatagram(120, { dst: BEHIND_SGW2 });
    const relayed = runOne(sgw0, Op.INBOUND, wrap(toSgw2));
    expect([relayed.verdict, relayed.sa, relayed.nexthop]).toEqual([Verdict.FORWARD, hopIn.in.id, ipToU32(ADDR.sgw2)]);
    expect(hex(relayed.packet.subarray(relayed.packet.length - toSgw2.length))).toBe(hex(toSgw2));

    const inside = espDatagram(120, { dst: ADDR.ch0 });
    const forwarded = runOne(sgw0, Op.INBOUND, wrap(inside));
    expect([forwarded.verdict, forwarded.nexthop, hex(forwarded.packet)]).toEqual([
      Verdict.FORWARD,
      ipToU32(ADDR.ch0),
      hex(inside),
    ]);
  });

  it('issue 11: an in next-hop SA with relay: false punts relay_denied for what is not for this node; local layers still open', () => {
    const { smn, sgw0, wrap } = cast(impl, { ...hopIn.in, relay: false });
    for (const d of [espDatagram(120, { dst: BEHIND_SGW2 }), espDatagram(120, { dst: ADDR.ch0 })]) {
      const r = runOne(sgw0, Op.INBOUND, wrap(d));
      expect([r.verdict, r.reason, r.sa, hex(r.packet)]).toEqual([
        Verdict.PUNT,
        Reason.relay_denied,
        hopIn.in.id,
        hex(d),
      ]);
    }
    expect(sgw0.counters()[Reason.relay_denied]).toBe(2n);
    const endLayer = runOne(smn, Op.ENCAP, datagram(90, { dst: ADDR.ch0 }), end.out.id).packet;
    expect(runOne(sgw0, Op.INBOUND, wrap(endLayer)).verdict).toBe(Verdict.DELIVER);
  });

  it('relay and selectors are refused on the role they do not apply to, and relay must be a boolean', () => {
    const engine = engineWith(impl, []);
    opened.push(engine);
    expect(() => engine.installSa({ ...end.in, relay: false })).toThrow(/relay applies to role 'nexthop' only/);
    expect(() => engine.installSa({ ...hopIn.in, relay: 'no' as never })).toThrow(/relay must be true or false/);
    const any = { src: ['0.0.0.0/0'], dst: ['0.0.0.0/0'] };
    expect(() => engine.installSa({ ...hopIn.in, selectors: any })).toThrow(/selectors apply to role 'end' only/);
  });
});
