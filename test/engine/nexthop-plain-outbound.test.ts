// SaDesc.plain { src, outbound: table } (docs/engine.md §4, §5): an inbound Next-hop SA hands a plain datagram its
// verified layer protected (one that is not SKIP/AH/ESP), from a source it speaks for and not IP-in-IP, to OUTBOUND
// policy table `table`: `pass` forwards it as a router does, `drop` drops it, everything else is punted
// `nexthop_plain` as without it. This is §3.5's "Mobile IP without IPsec" at the visited SGW (the SMN's datagram to
// an outside host goes on as usual IP) without JavaScript. Both paths, byte-identical.
process.env.MIPSEC_NATIVE = '1';
import { describe, expect, it } from 'vitest';
import { Op, Reason, Verdict, type Engine, type Policy, type SaDesc } from '../../src/engine/index.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { IpProto, buildIpv4, internetChecksum, parseIpv4 } from '../../src/wire/ipv4.js';
import { IMPLS, MODES, closedAfterEach, datagram, engineWith, hex, nexthopSaPair, runOne } from './fixtures.js';

const track = closedAfterEach();

const HOME = '10.0.0.100';
const COA = '10.1.0.100';
const SGW1 = '198.18.1.1';
const CHX = '198.18.9.10';
const TABLE = 9;

/** SGW1's Next-hop SA from the SMN (home and care-of address its sources) and policy table 9. */
function setup(mode: 'skip' | 'spi', plain = true) {
  const hop = nexthopSaPair({ alg: 'gmac-aes128', mode, id: 91, src: COA, dst: SGW1, mkid: { src: HOME } });
  const hopIn: SaDesc = plain ? { ...hop.in, plain: { src: [`${HOME}/32`, `${COA}/32`], outbound: TABLE } } : hop.in;
  const policies: Policy[] = [
    { table: TABLE, prefix: `${CHX}/32`, sa: 0, action: 'pass' },
    { table: TABLE, prefix: '198.18.9.0/24', sa: 0, action: 'punt' },
    { table: TABLE, prefix: '203.0.113.0/24', sa: 0, action: 'drop' },
    { table: TABLE, prefix: '192.0.2.0/24', sa: 0, action: 'bypass' },
    { table: TABLE, prefix: `${SGW1}/32`, sa: 0, action: 'inbound' },
    // Another table passes 198.51.100.0/24: only the SA's own table decides.
    { table: TABLE + 1, prefix: '198.51.100.0/24', sa: 0, action: 'pass' },
  ];
  const gateway = (impl: (typeof IMPLS)[number]) => {
    const e = track(engineWith(impl, [hopIn], { local: [SGW1], routes: [{ prefix: '0.0.0.0/0', sa: 0 }] }));
    e.setPolicies(policies);
    return e;
  };
  // The SMN: one sender per gateway (its sequence numbers go on from packet to packet).
  const sender = () => {
    const tx = track(engineWith('ts', [hop.out]));
    return (inner: Uint8Array) => runOne(tx, Op.WRAP, inner, hop.out.id).packet;
  };
  return { hop, hopIn, gateway, sender };
}

function ipip(src: string, dst: string, inner: Uint8Array): Uint8Array {
  return buildIpv4({ src: ipToU32(src), dst: ipToU32(dst), protocol: IpProto.IPIP, ttl: 64 }, inner);
}

describe('Next-hop SA `plain` { src, outbound }, native and TS', () => {
  for (const mode of MODES) {
    it(`(${mode}) the SMN's datagram to a host table ${TABLE} passes is forwarded as a router does, byte-identical`, () => {
      const s = setup(mode);
      const fromHome = datagram(900, { src: HOME, dst: CHX, ttl: 63 });
      const fromCoa = datagram(120, { src: COA, dst: CHX, ttl: 9 });
      const results = IMPLS.map((impl) => {
        const gw = s.gateway(impl);
        const seal = s.sender();
        const sealed = [fromHome, fromCoa].map((d) => seal(d));
        const got = [...sealed, sealed[0]].map((p) => runOne(gw, Op.INBOUND, p));
        return { impl, got, stats: gw.saStats(s.hopIn.id), counters: gw.counters().slice() };
      });
      for (const { impl, got, stats } of results) {
        for (const [i, sent] of [fromHome, fromCoa].entries()) {
          const r = got[i];
          expect([impl, i, r.verdict, r.reason, r.sa, r.nexthop]).toEqual([
            impl,
            i,
            Verdict.FORWARD,
            Reason.none,
            s.hopIn.id,
            ipToU32(CHX),
          ]);
          // The datagram as sent, TTL − 1 and the header checksum still right.
          const ip = parseIpv4(r.packet, 0);
          expect(ip.ok && ip.header.ttl).toBe(sent[8] - 1);
          expect(internetChecksum(r.packet, 0, 20)).toBe(0);
          expect(hex(r.packet.subarray(20))).toBe(hex(sent.subarray(20)));
          expect(r.packet.length).toBe(sent.length);
        }
        expect([impl, got[2].verdict, got[2].reason], 'a replay of the sealed packet').toEqual([
          impl,
          Verdict.DROP,
          Reason.replay,
        ]);
        expect(stats?.packets).toBe(2n);
      }
      for (const i of [0, 1]) expect(hex(results[1].got[i].packet)).toBe(hex(results[0].got[i].packet));
      expect(results[1].counters).toEqual(results[0].counters);
    });
  }

  it('what the table does not pass: drop drops; punt, bypass, inbound, no policy, another table, TTL 1 punt `nexthop_plain` unchanged', () => {
    const cases: [string, Uint8Array, number, number][] = [
      ['policy drop', datagram(100, { src: HOME, dst: '203.0.113.5' }), Verdict.DROP, Reason.policy_drop],
      ['policy punt', datagram(100, { src: HOME, dst: '198.18.9.11' }), Verdict.PUNT, Reason.nexthop_plain],
      [
        'policy bypass: never as it is',
        datagram(100, { src: HOME, dst: '192.0.2.7' }),
        Verdict.PUNT,
        Reason.nexthop_plain,
      ],
      [
        'policy inbound: no second INBOUND',
        datagram(100, { src: HOME, dst: SGW1 }),
        Verdict.PUNT,
        Reason.nexthop_plain,
      ],
      ['no policy', datagram(100, { src: HOME, dst: '172.16.0.1' }), Verdict.PUNT, Reason.nexthop_plain],
      ['another table', datagram(100, { src: HOME, dst: '198.51.100.1' }), Verdict.PUNT, Reason.nexthop_plain],
      [
        'TTL 1: the control plane answers',
        datagram(100, { src: HOME, dst: CHX, ttl: 1 }),
        Verdict.PUNT,
        Reason.nexthop_plain,
      ],
    ];
    for (const mode of MODES) {
      const s = setup(mode);
      for (const impl of IMPLS) {
        const gw = s.gateway(impl);
        const seal = s.sender();
        for (const [what, inner, verdict, reason] of cases) {
          const r = runOne(gw, Op.INBOUND, seal(inner));
          expect([impl, mode, what, r.verdict, r.reason, r.sa]).toEqual([
            impl,
            mode,
            what,
            verdict,
            reason,
            s.hopIn.id,
          ]);
          if (verdict === Verdict.PUNT) expect([impl, what, hex(r.packet)]).toEqual([impl, what, hex(inner)]);
        }
      }
    }
  });

  it('security: a source the SA does not speak for, IP-in-IP (any tunnel under a Next-hop layer alone) and an SA without `plain` are punted, never forwarded', () => {
    const spoofed = datagram(100, { src: '10.0.0.101', dst: CHX });
    const tunnel = ipip(HOME, CHX, datagram(100, { src: HOME, dst: CHX }));
    const tunnelIntoSite = ipip(HOME, CHX, datagram(100, { src: CHX, dst: '10.1.0.5' }));
    for (const mode of MODES) {
      for (const [plain, cases] of [
        [true, [spoofed, tunnel, tunnelIntoSite]],
        [false, [datagram(100, { src: HOME, dst: CHX }), spoofed, tunnel]],
      ] as const) {
        const s = setup(mode, plain);
        for (const impl of IMPLS) {
          const gw = s.gateway(impl);
          const seal = s.sender();
          for (const [i, inner] of cases.entries()) {
            const r = runOne(gw, Op.INBOUND, seal(inner));
            expect([impl, mode, plain, i, r.verdict, r.reason, r.sa]).toEqual([
              impl,
              mode,
              plain,
              i,
              Verdict.PUNT,
              Reason.nexthop_plain,
              s.hopIn.id,
            ]);
            expect(hex(r.packet)).toBe(hex(inner));
          }
        }
      }
    }
  });

  it('a forged layer is dropped `auth` before the table is asked', () => {
    const s = setup('skip');
    for (const impl of IMPLS) {
      const gw = s.gateway(impl);
      const sealed = s.sender()(datagram(200, { src: HOME, dst: CHX }));
      sealed[sealed.length - 1] ^= 1;
      const r = runOne(gw, Op.INBOUND, sealed);
      expect([impl, r.verdict, r.reason]).toEqual([impl, Verdict.DROP, Reason.auth]);
    }
  });

  it('is validated alike: role nexthop only, { src: 1..32 prefixes, outbound: u32 }; ignored on an out SA', () => {
    const hop = nexthopSaPair({ alg: 'hmac-sha256-128', mode: 'spi', id: 95, src: COA, dst: SGW1 });
    const end = {
      ...hop.in,
      role: 'end',
      ah: undefined,
      esp: { suite: 'aes128gcm', key: new Uint8Array(20), spi: 4000 },
    };
    const bad: [unknown, RegExp][] = [
      [{ ...end, plain: { src: [`${HOME}/32`], outbound: 1 } }, /plain applies to role 'nexthop' only/],
      [
        { ...hop.in, plain: { src: [`${HOME}/32`] } },
        /plain must be \{ src: \['a\.b\.c\.d\/len', …\], outbound: table \}/,
      ],
      [{ ...hop.in, plain: { src: [`${HOME}/32`], outbound: -1 } }, /plain\.outbound must be a policy table id/],
      [{ ...hop.in, plain: { src: [], outbound: 1 } }, /plain\.src must list 1\.\.32 prefixes/],
      [{ ...hop.in, plain: { src: ['10.0.0.1/8'], outbound: 1 } }, /plain\.src: .*host bits/],
      [{ ...hop.in, plain: 'pass' }, /plain must be \{ src/],
    ];
    for (const impl of IMPLS) {
      const e: Engine = track(engineWith(impl, []));
      for (const [desc, message] of bad)
        expect(() => e.installSa(desc as SaDesc), `${impl} ${JSON.stringify((desc as SaDesc).plain)}`).toThrow(message);
      e.installSa({ ...hop.in, plain: { src: [`${HOME}/32`, '0.0.0.0/0'], outbound: 0xffffffff } });
      e.installSa({ ...hop.out, plain: { src: [`${HOME}/32`], outbound: 1 } });
    }
  });
});
