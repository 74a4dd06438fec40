// Smoke round trips on the native engine alone: every suite and layer type gives the original bytes back.
import { describe, expect, it } from 'vitest';
import { Batch, Op, Reason, VERDICT_COUNTER_BASE, Verdict } from '../../src/engine/index.js';
import { ipToU32 } from '../../src/wire/addr.js';
import {
  ADDR,
  ESP_SUITES,
  MAC_ALGS,
  MODES,
  COVERAGES,
  datagram,
  endSaPair,
  espDatagram,
  engineWith,
  nexthopSaPair,
  runOne,
} from '../engine/fixtures.js';
import { nativeEngine, toHex } from './addon.js';

const SIZES = [20, 23, 64, 512, 1400];

describe('native round trips', () => {
  for (const mode of MODES) {
    for (const suite of ESP_SUITES) {
      for (const ah of [undefined, ...MAC_ALGS]) {
        it(`ENCAP → INBOUND, ${mode} ${suite}${ah ? ` + AH ${ah}` : ''}`, () => {
          const pair = endSaPair({ suite, ah, mode, id: 3, src: ADDR.sgw0, dst: ADDR.sgw1 });
          const tx = nativeEngine([pair.out]);
          const rx = nativeEngine([pair.in], { local: [ADDR.sgw1] });
          for (const size of SIZES) {
            const inner = datagram(size);
            const sealed = runOne(tx, Op.ENCAP, inner, pair.out.id);
            expect([sealed.verdict, sealed.reason, sealed.nexthop]).toEqual([
              Verdict.FORWARD,
              Reason.none,
              ipToU32(ADDR.sgw1),
            ]);
            expect(sealed.packet.length).toBeGreaterThan(inner.length + 16 + 16);
            const opened = runOne(rx, Op.INBOUND, sealed.packet);
            expect([opened.verdict, opened.reason, opened.sa]).toEqual([Verdict.DELIVER, Reason.none, pair.in.id]);
            expect(toHex(opened.packet)).toBe(toHex(inner));
          }
          expect(tx.saStats(pair.out.id)?.espSeq).toBe(SIZES.length);
          expect(rx.saStats(pair.in.id)?.espSeq).toBe(SIZES.length);
          tx.close();
          rx.close();
        });
      }
    }
    for (const alg of MAC_ALGS) {
      for (const coverage of COVERAGES) {
        it(`WRAP → relay → INBOUND, ${mode} ${alg} ${coverage}`, () => {
          const hop1 = nexthopSaPair({ alg, coverage, mode, id: 20, src: ADDR.sgw2, dst: ADDR.sgw1 });
          const hop2 = nexthopSaPair({
            alg: alg === 'gmac-aes128' ? 'hmac-sha256-128' : 'gmac-aes128',
            coverage,
            mode,
            id: 21,
            src: ADDR.sgw1,
            dst: ADDR.sgw0,
          });
          const first = nativeEngine([hop1.out]);
          const relay = nativeEngine([hop1.in, hop2.out], {
            local: [ADDR.sgw1],
            routes: [{ prefix: '10.0.0.0/8', sa: hop2.out.id }],
          });
          // The layers protect an End-End ESP packet for CH0's gateway (only SKIP/AH/ESP goes on in the engine).
          const last = nativeEngine([hop2.in], { local: [ADDR.sgw0], routes: [{ prefix: '0.0.0.0/0', sa: 0 }] });
          for (const size of SIZES) {
            const inner = espDatagram(Math.max(size, 36), { dst: ADDR.ch0 });
            const wrapped = runOne(first, Op.WRAP, inner, hop1.out.id);
            expect([wrapped.verdict, wrapped.reason]).toEqual([Verdict.FORWARD, Reason.none]);
            const relayed = runOne(relay, Op.INBOUND, wrapped.packet);
            expect([relayed.verdict, relayed.reason, relayed.sa, relayed.nexthop]).toEqual([
              Verdict.FORWARD,
              Reason.none,
              hop1.in.id,
              ipToU32(ADDR.sgw0),
            ]);
            expect(toHex(relayed.packet.subarray(relayed.packet.length - inner.length))).toBe(toHex(inner));
            const peeled = runOne(last, Op.INBOUND, relayed.packet);
            const onward = [Verdict.FORWARD, Reason.none, hop2.in.id, ipToU32(ADDR.ch0)];
            expect([peeled.verdict, peeled.reason, peeled.sa, peeled.nexthop]).toEqual(onward);
            expect(toHex(peeled.packet)).toBe(toHex(inner));
          }
        });
      }
    }
  }

  it('IPIP_ENCAP → IPIP_DECAP (delivers) and INBOUND (punts the peeled datagram not_ipsec, SA 0); loop and TTL 0 are refused', () => {
    const engine = nativeEngine();
    const inner = datagram(100);
    const [src, dst] = [ipToU32(ADDR.ha), ipToU32(ADDR.smnCoa)];
    const outer = runOne(engine, Op.IPIP_ENCAP, inner, src, dst);
    expect([outer.verdict, outer.nexthop, outer.packet.length]).toEqual([Verdict.FORWARD, dst, inner.length + 20]);
    expect(toHex(runOne(engine, Op.IPIP_DECAP, outer.packet).packet)).toBe(toHex(inner));
    const viaInbound = runOne(engine, Op.INBOUND, outer.packet);
    expect([viaInbound.verdict, viaInbound.reason, viaInbound.sa, toHex(viaInbound.packet)]).toEqual([
      Verdict.PUNT,
      Reason.not_ipsec,
      0,
      toHex(inner),
    ]);
    expect(runOne(engine, Op.IPIP_ENCAP, inner, src, ipToU32(ADDR.smnHome)).reason).toBe(Reason.loop);
    const dead = runOne(engine, Op.IPIP_ENCAP, datagram(100, { ttl: 0 }), src, dst);
    expect(runOne(engine, Op.IPIP_DECAP, dead.packet).reason).toBe(Reason.ttl_expired);
  });

  it('counters are a live view of native memory: every verdict and reason counted', () => {
    const engine = nativeEngine();
    const counters = engine.counters();
    const batch = new Batch({ capacity: 4 });
    batch.push(Op.INBOUND, datagram(64)); // not IPsec → punt
    batch.push(Op.ENCAP, datagram(64), 99); // no SA
    batch.push(Op.IPIP_DECAP, new Uint8Array(10)); // truncated
    batch.push(77 as never, datagram(64)); // unknown op
    engine.process(batch);
    expect(counters).toBe(engine.counters());
    expect(counters[Reason.not_ipsec]).toBe(1n);
    expect(counters[Reason.no_sa]).toBe(1n);
    expect(counters[Reason.truncated]).toBe(1n);
    expect(counters[Reason.bad_descriptor]).toBe(1n);
    expect(counters[VERDICT_COUNTER_BASE + Verdict.PUNT]).toBe(1n);
    expect(counters[VERDICT_COUNTER_BASE + Verdict.DROP]).toBe(3n);
    batch.desc[3] = 2048 + 300; // packet 0 pointing into slot 1
    batch.count = 1;
    engine.process(batch);
    expect(counters[Reason.bad_descriptor]).toBe(2n);
  });
});

describe('saStats', () => {
  it('agree with the TS path after the same flows (packets, bytes, sequence numbers)', () => {
    const pair = endSaPair({
      suite: 'chacha20poly1305',
      ah: 'hmac-sha256-128',
      mode: 'spi',
      id: 30,
      src: ADDR.sgw0,
      dst: ADDR.sgw1,
      seq: 100,
    });
    const hop = nexthopSaPair({
      alg: 'gmac-aes128',
      coverage: 'headers',
      mode: 'skip',
      id: 31,
      src: ADDR.sgw0,
      dst: ADDR.sgw1,
    });
    const stats = (impl: 'ts' | 'native') => {
      const tx = impl === 'native' ? nativeEngine([pair.out, hop.out]) : engineWith('ts', [pair.out, hop.out]);
      const rx =
        impl === 'native'
          ? nativeEngine([pair.in, hop.in], { local: [ADDR.sgw1, ADDR.ch0] })
          : engineWith('ts', [pair.in, hop.in], { local: [ADDR.sgw1, ADDR.ch0] });
      for (const size of SIZES) {
        runOne(rx, Op.INBOUND, runOne(tx, Op.ENCAP, datagram(size), pair.out.id).packet);
        runOne(rx, Op.INBOUND, runOne(tx, Op.WRAP, datagram(size), hop.out.id).packet);
      }
      return [pair.out.id, pair.in.id, hop.out.id, hop.in.id].map((id) =>
        impl === 'native' ? (tx.saStats(id) ?? rx.saStats(id)) : (tx.saStats(id) ?? rx.saStats(id)),
      );
    };
    const native = stats('native');
    expect(native[0]).toEqual({
      packets: BigInt(SIZES.length),
      bytes: BigInt(SIZES.reduce((a, b) => a + b, 0)),
      ahSeq: 100 + SIZES.length,
      espSeq: 100 + SIZES.length,
    });
    expect(native).toEqual(stats('ts'));
  });
});
