// SaDesc.selectorMiss { outbound: table } (docs/engine.md §4, §5): an inbound End-End SA hands a datagram it opened
// that lies outside its selectors, from a source inside its src selectors, to OUTBOUND policy table `table`:
// `protect` seals it (ENCAP + WRAP) and FORWARDs it, `drop` drops it, everything else is punted `selector` as under
// 'punt'. This is §3.3's "SGW0 decrypts and re-encrypts" without JavaScript. Both paths, byte-identical.
process.env.MIPSEC_NATIVE = '1';
import { describe, expect, it } from 'vitest';
import { Op, Reason, Verdict, type Engine, type Policy, type SaDesc } from '../../src/engine/index.js';
import { Batch } from '../../src/engine/batch.js';
import { aeadSeal, ivFromSeq, keyMaterial } from '../../src/engine/ref/crypto.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { IpProto, buildIpv4 } from '../../src/wire/ipv4.js';
import {
  IMPLS,
  MODES,
  datagram,
  endSaPair,
  engineWith,
  hex,
  nexthopSaPair,
  runOne,
  closedAfterEach,
  rng,
} from './fixtures.js';

const track = closedAfterEach();

const SMN_COA = '198.18.7.100';
const HOME = '10.0.0.100';
const SGW0 = '198.18.0.1';
const SGW1 = '198.18.1.1';
const CH1 = '10.1.0.10';
const TABLE = 7;
const selectors = { src: [`${HOME}/32`], dst: ['10.0.0.0/24'] };

/** SGW0's SAs and policy table 7 in one of the modes: the SMN's End-End layer in, End-End + Next-hop to SGW1 out. */
function setup(mode: 'skip' | 'spi', extra: { maxPackets?: number; softPackets?: number } = {}, smnAh = true) {
  const ah = smnAh ? ('hmac-sha256-128' as const) : undefined;
  const smn = endSaPair({ suite: 'aes128gcm', ah, mode, id: 71, src: SMN_COA, dst: SGW0 });
  const end = endSaPair({ suite: 'aes256gcm', ah: 'gmac-aes128', mode, id: 72, src: SGW0, dst: SGW1 });
  const hop = nexthopSaPair({ alg: 'gmac-aes128', mode, id: 73, src: SGW0, dst: SGW1, coverage: 'headers' });
  const smnIn: SaDesc = { ...smn.in, selectors, selectorMiss: { outbound: TABLE } };
  const endOut: SaDesc = { ...end.out, ...extra };
  const policies: Policy[] = [
    { table: TABLE, prefix: '10.1.0.0/16', sa: end.out.id, wrap: [hop.out.id] },
    { table: TABLE, prefix: '10.2.0.0/16', sa: 0, action: 'punt' },
    { table: TABLE, prefix: '10.3.0.0/16', sa: 0, action: 'drop' },
    { table: TABLE, prefix: '8.8.8.0/24', sa: 0, action: 'pass' },
    { table: TABLE, prefix: '9.9.9.0/24', sa: 0, action: 'bypass' },
    // Next-hop layers alone (an SMN's §3.5 table entry): never what a re-encryption seals the SMN's datagram in.
    { table: TABLE, prefix: '10.5.0.0/16', sa: 0, action: 'protect', wrap: [hop.out.id] },
    { table: TABLE, prefix: `${SGW0}/32`, sa: 0, action: 'inbound' },
    // Another table names 10.4/16: only the SA's own table decides.
    { table: TABLE + 1, prefix: '10.4.0.0/16', sa: end.out.id, wrap: [hop.out.id] },
  ];
  const gateway = (impl: (typeof IMPLS)[number]) => {
    const e = track(engineWith(impl, [smnIn, endOut, hop.out], { local: [SGW0, '10.0.0.1'] }));
    e.setPolicies(policies);
    return e;
  };
  // The SMN: one sender per gateway (its sequence numbers go on from packet to packet).
  const sender = () => {
    const tx = track(engineWith('ts', [smn.out]));
    return (inner: Uint8Array) => runOne(tx, Op.ENCAP, inner, smn.out.id).packet;
  };
  return { smn, end, hop, smnIn, gateway, sender };
}

describe('selectorMiss { outbound }, native and TS', () => {
  for (const mode of MODES) {
    it(`(${mode}) a miss from the SA's own source is sealed by table ${TABLE}'s protect policy, byte-identical; SGW1 opens it`, () => {
      const s = setup(mode);
      const inner = datagram(600, { src: HOME, dst: CH1 });
      const inside = datagram(90, { src: HOME, dst: '10.0.0.20' });
      const results = IMPLS.map((impl) => {
        const gw = s.gateway(impl);
        const seal = s.sender();
        const sealed = [inner, inside].map((d) => seal(d));
        const got = [...sealed, sealed[0]].map((p) => runOne(gw, Op.INBOUND, p));
        return { impl, got, stats: gw.saStats(s.smnIn.id), outStats: gw.saStats(s.end.out.id) };
      });
      for (const { impl, got, stats, outStats } of results) {
        expect([impl, got[0].verdict, got[0].reason, got[0].sa, got[0].nexthop]).toEqual([
          impl,
          Verdict.FORWARD,
          Reason.none,
          s.end.out.id,
          ipToU32(SGW1),
        ]);
        expect([impl, got[1].verdict, hex(got[1].packet)]).toEqual([impl, Verdict.DELIVER, hex(inside)]);
        expect([impl, got[2].verdict], 'a replay of the sealed packet').toEqual([impl, Verdict.DROP]);
        expect(stats?.packets, 'delivered and resealed datagrams count').toBe(2n);
        expect(outStats?.packets).toBe(1n);
      }
      expect(hex(results[1].got[0].packet), 'native = TS').toBe(hex(results[0].got[0].packet));
      // SGW1 peels the Next-hop layer and opens the End-End layer: the SMN's datagram, unchanged.
      const sgw1 = track(engineWith('ts', [s.end.in, s.hop.in], { local: [SGW1] }));
      const r = runOne(sgw1, Op.INBOUND, results[1].got[0].packet);
      expect([r.verdict, r.sa, hex(r.packet)]).toEqual([Verdict.DELIVER, s.end.in.id, hex(inner)]);
    });
  }

  it('what the table does not protect: drop drops; punt, pass, bypass, inbound, no policy and another table punt `selector`', () => {
    const cases: [string, string, number, number][] = [
      ['policy drop', '10.3.0.9', Verdict.DROP, Reason.policy_drop],
      ['policy punt', '10.2.0.9', Verdict.PUNT, Reason.selector],
      ['policy pass: never in clear', '8.8.8.8', Verdict.PUNT, Reason.selector],
      ['policy bypass: never in clear', '9.9.9.9', Verdict.PUNT, Reason.selector],
      ['policy inbound: no second INBOUND', SGW0, Verdict.PUNT, Reason.selector],
      ['protect without an End-End SA: never under a Next-hop layer alone', '10.5.0.9', Verdict.PUNT, Reason.selector],
      ['no policy', '172.16.0.1', Verdict.PUNT, Reason.selector],
      ['only another table covers it', '10.4.0.1', Verdict.PUNT, Reason.selector],
    ];
    for (const mode of MODES) {
      const s = setup(mode);
      for (const impl of IMPLS) {
        const gw = s.gateway(impl);
        const seal = s.sender();
        for (const [what, dst, verdict, reason] of cases) {
          const inner = datagram(120, { src: HOME, dst });
          const r = runOne(gw, Op.INBOUND, seal(inner));
          expect([impl, mode, what, r.verdict, r.reason, r.sa]).toEqual([
            impl,
            mode,
            what,
            verdict,
            reason,
            s.smnIn.id,
          ]);
          expect([impl, what, hex(r.packet)]).toEqual([impl, what, hex(inner)]);
        }
        expect(gw.saStats(s.smnIn.id)?.packets, 'nothing was delivered or resealed').toBe(0n);
        expect(gw.saStats(s.end.out.id)?.packets).toBe(0n);
      }
    }
  });

  it('an out SA of the chain at its maxPackets: the miss is punted `selector` (not `rekey`), the opened datagram intact', () => {
    const s = setup('spi', { maxPackets: 1 });
    for (const impl of IMPLS) {
      const gw = s.gateway(impl);
      const seal = s.sender();
      const inner = datagram(200, { src: HOME, dst: CH1 });
      const first = runOne(gw, Op.INBOUND, seal(inner));
      const second = runOne(gw, Op.INBOUND, seal(inner));
      expect([impl, first.verdict, second.verdict, second.reason, second.sa]).toEqual([
        impl,
        Verdict.FORWARD,
        Verdict.PUNT,
        Reason.selector,
        s.smnIn.id,
      ]);
      expect(hex(second.packet)).toBe(hex(inner));
    }
  });

  it('softPackets: the FORWARD that reaches it says rekey_due, naming the out SA', () => {
    const s = setup('skip', { softPackets: 2 });
    for (const impl of IMPLS) {
      const gw = s.gateway(impl);
      const seal = s.sender();
      const got = [1, 2, 3].map(() => runOne(gw, Op.INBOUND, seal(datagram(100, { src: HOME, dst: CH1 }))));
      expect([impl, ...got.map((r) => [r.verdict, r.reason, r.sa])]).toEqual([
        impl,
        [Verdict.FORWARD, Reason.none, s.end.out.id],
        [Verdict.FORWARD, Reason.rekey_due, s.end.out.id],
        [Verdict.FORWARD, Reason.none, s.end.out.id],
      ]);
    }
  });

  it('a policy `src` list is honoured; a miss too short to name its addresses is punted', () => {
    const s = setup('spi');
    for (const impl of IMPLS) {
      const gw = s.gateway(impl);
      const seal = s.sender();
      gw.setPolicies([
        { table: TABLE, prefix: '10.1.0.0/16', src: ['10.9.0.0/16'], sa: s.end.out.id, wrap: [s.hop.out.id] },
      ]);
      const r = runOne(gw, Op.INBOUND, seal(datagram(100, { src: HOME, dst: CH1 })));
      expect([impl, r.verdict, r.reason]).toEqual([impl, Verdict.PUNT, Reason.selector]);
    }
  });

  it('is validated alike: a u32 table, selectors required, role end only', () => {
    const s = setup('spi');
    const hop = nexthopSaPair({ alg: 'gmac-aes128', mode: 'spi', id: 74, src: SMN_COA, dst: SGW0 });
    const bad: [unknown, RegExp][] = [
      [{ ...s.smnIn, selectorMiss: { outbound: -1 } }, /selectorMiss.outbound must be a policy table id/],
      [{ ...s.smnIn, selectorMiss: { outbound: 1.5 } }, /selectorMiss.outbound must be a policy table id/],
      [{ ...s.smnIn, selectorMiss: { outbound: 2 ** 32 } }, /selectorMiss.outbound must be a policy table id/],
      [{ ...s.smnIn, selectorMiss: { outbound: '7' } }, /selectorMiss.outbound must be a policy table id/],
      [{ ...s.smnIn, selectorMiss: { inbound: 7 } }, /selectorMiss must be 'drop', 'punt' or \{ outbound: table \}/],
      [{ ...s.smnIn, selectorMiss: { outbound: 7, x: 1 } }, /selectorMiss must be/],
      [{ ...s.smnIn, selectorMiss: null }, /selectorMiss must be/],
      [{ ...s.smnIn, selectors: undefined }, /selectorMiss \{ outbound \} needs selectors/],
      [{ ...hop.in, selectorMiss: { outbound: 7 } }, /selectorMiss applies to role 'end' only/],
    ];
    for (const impl of IMPLS) {
      const e = track(engineWith(impl, []));
      for (const [desc, message] of bad) expect(() => e.installSa(desc as SaDesc), impl).toThrow(message);
      e.installSa({ ...s.smnIn, selectorMiss: { outbound: 0xffffffff } });
    }
  });

  it('differential fuzz: 2400 opened datagrams of any shape (lengths, versions, IHL, fragments, sources, destinations) decide alike', () => {
    // ESP built by hand around arbitrary plaintext, so the opened datagram can be anything at all.
    const s = setup('spi', {}, false);
    const spi = s.smn.in.esp!.spi;
    const key = keyMaterial(s.smn.in.esp!.key, true);
    const r = rng(1996);
    const sources = [HOME, HOME, HOME, '10.0.0.55', SMN_COA, '10.1.0.10', '0.0.0.0'];
    const dests = [
      CH1,
      '10.1.255.255',
      '10.0.0.20',
      '10.2.0.9',
      '10.3.0.9',
      '8.8.8.8',
      '9.9.9.9',
      SGW0,
      '10.4.0.1',
      '1.2.3.4',
    ];
    let seq = 0;
    const packet = (inner: Uint8Array) => {
      seq++;
      const head = new Uint8Array(16);
      new DataView(head.buffer).setUint32(0, spi);
      new DataView(head.buffer).setUint32(4, seq);
      head.set(ivFromSeq(seq), 8);
      const pad = (4 - ((inner.length + 2) % 4)) % 4;
      const plain = Uint8Array.from([...inner, ...Array.from({ length: pad }, (_, i) => i + 1), pad, IpProto.IPIP]);
      const sealed = aeadSeal('aes128gcm', key, head.subarray(8), head.subarray(0, 8), plain);
      const outer = { src: ipToU32(SMN_COA), dst: ipToU32(SGW0), protocol: IpProto.ESP };
      return buildIpv4(outer, Buffer.concat([head, sealed.ciphertext, sealed.tag]));
    };
    const inner = () => {
      const size = [0, 8, 19, 20, 24, 40, 100, 600, 1400][r(9)] + r(4);
      const d = datagram(Math.max(size, 20), { src: sources[r(sources.length)], dst: dests[r(dests.length)] });
      const out = d.subarray(0, size).slice();
      const twist = r(8);
      if (twist === 0 && size > 0) out[0] = (r(16) << 4) | (out[0] & 0x0f); // version
      if (twist === 1 && size > 0) out[0] = (out[0] & 0xf0) | r(16); // IHL
      if (twist === 2 && size > 7) out[6] = [0x20, 0x00, 0x3f, 0x40][r(4)]; // MF, offset
      if (twist === 3 && size > 3) out[2 + r(2)] = r(256); // total length
      if (twist === 4 && size > 11) out[10 + r(2)] ^= 1 << r(8); // checksum
      return out;
    };
    const gateways = IMPLS.map((impl) => s.gateway(impl));
    for (let round = 0; round < 12; round++) {
      const packets = Array.from({ length: 200 }, () => packet(inner()));
      const results = gateways.map((gw) => {
        const batch = new Batch({ capacity: packets.length });
        for (const p of packets) batch.push(Op.INBOUND, p);
        gw.process(batch);
        return packets.map((_, i) => {
          const o = batch.result(i);
          return `v${o.verdict} r${o.reason} sa${o.sa} nh${o.nexthop} ${o.verdict === Verdict.DROP ? '' : hex(o.packet)}`;
        });
      });
      const diffs = results[0].flatMap((a, i) =>
        a === results[1][i] ? [] : [`#${i}\n  ts     ${a}\n  native ${results[1][i]}`],
      );
      expect(diffs.slice(0, 3)).toEqual([]);
    }
    const [ts, native] = gateways.map((g) => g.counters());
    expect(Array.from(native)).toEqual(Array.from(ts));
    for (const reason of ['selector', 'policy_drop', 'bad_total_length', 'bad_ihl'] as const)
      expect(ts[Reason[reason]], `${reason} reached`).toBeGreaterThan(0n);
    expect(ts[48 + Verdict.FORWARD], 'FORWARD reached').toBeGreaterThan(0n);
    expect(gateways[1].saStats(s.smnIn.id)).toEqual(gateways[0].saStats(s.smnIn.id));
  });
});
