// Anti-replay (RFC 4303 App. A, docs/engine.md §5): duplicates, the window's left edge, order inside the window,
// sequence number 0, several window sizes, and a window that moves only after the ICV verified.
process.env.MIPSEC_NATIVE = '1';
import { describe, expect, it } from 'vitest';
import { Op, Verdict, reasonName, type Engine, type SaDesc } from '../../src/engine/index.js';
import { IPV4_HEADER_BYTES } from '../../src/wire/ipv4.js';
import {
  ADDR,
  IMPLS,
  datagram,
  endSaPair,
  engineWith,
  hex,
  nexthopSaPair,
  runOne,
  type SaPair,
  closedAfterEach,
} from './fixtures.js';

const track = closedAfterEach();

/** A packet whose first header carries sequence number `seq` (the sender's SA starts at seq - 1). */
function sealedWithSeq(make: (seq: number) => SaPair, seq: number): Uint8Array {
  const pair = make(seq - 1);
  const tx = engineWith('ts', [pair.out]);
  const packet = runOne(tx, Op.ENCAP, datagram(80, { id: seq & 0xffff }), pair.out.id).packet;
  tx.close();
  return packet;
}

/** 'deliver' or the drop reason. */
function outcome(rx: Engine, packet: Uint8Array): string {
  const r = runOne(rx, Op.INBOUND, packet);
  return r.verdict === Verdict.DELIVER ? 'deliver' : reasonName[r.reason];
}

describe.each(IMPLS)('[%s] anti-replay', (impl) => {
  describe.each([1024, 64, 128, 4096])('ESP window %i', (window) => {
    const make = (seq: number) =>
      endSaPair({
        suite: 'aes128gcm',
        mode: 'skip',
        id: 71,
        src: ADDR.sgw0,
        dst: ADDR.sgw1,
        seq,
        replayWindow: window === 1024 ? undefined : window,
      });
    const receiver = (): Engine => track(engineWith(impl, [make(0).in]));
    const packet = (seq: number) => sealedWithSeq(make, seq);

    it('a duplicate is a replay; the first copy is delivered', () => {
      const rx = receiver();
      const p = packet(5);
      expect(outcome(rx, p)).toBe('deliver');
      expect(outcome(rx, p)).toBe('replay');
      expect(Number(rx.counters()[18])).toBe(1);
    });

    it('W-1 behind the highest passes, W behind fails, and each only once', () => {
      const rx = receiver();
      const top = window + 100;
      expect(outcome(rx, packet(top))).toBe('deliver');
      expect(outcome(rx, packet(top - window))).toBe('replay');
      expect(outcome(rx, packet(top - window + 1))).toBe('deliver');
      expect(outcome(rx, packet(top - window + 1))).toBe('replay');
      expect(outcome(rx, packet(top - window - 7))).toBe('replay');
      expect(rx.saStats(make(0).in.id)?.espSeq).toBe(top);
    });

    it('out of order inside the window is accepted once each', () => {
      const rx = receiver();
      const order = [10, 8, 9, 3, 12, 11, 1, 2];
      for (const s of order) expect(outcome(rx, packet(s)), `seq ${s}`).toBe('deliver');
      for (const s of order) expect(outcome(rx, packet(s)), `seq ${s} again`).toBe('replay');
      expect(outcome(rx, packet(4))).toBe('deliver');
    });

    it('a jump of more than W clears the window', () => {
      const rx = receiver();
      expect(outcome(rx, packet(10))).toBe('deliver');
      const top = 10 + window * 3;
      expect(outcome(rx, packet(top))).toBe('deliver');
      expect(outcome(rx, packet(top - window + 1))).toBe('deliver');
      expect(outcome(rx, packet(top - window))).toBe('replay');
      expect(outcome(rx, packet(11))).toBe('replay');
    });

    it('a forged packet with a high sequence number does not move the window', () => {
      const rx = receiver();
      expect(outcome(rx, packet(10))).toBe('deliver');
      const forged = packet(10 + window * 2);
      forged[forged.length - 1] ^= 0x01;
      expect(outcome(rx, forged)).toBe('auth');
      expect(rx.saStats(make(0).in.id)?.espSeq).toBe(10);
      expect(outcome(rx, packet(3))).toBe('deliver'); // still inside the window that ends at 10
      expect(outcome(rx, packet(10 + window * 2))).toBe('deliver'); // the genuine one is not a replay
    });
  });

  it('sequence number 0 is always a replay, checked before the ICV', () => {
    const make = (seq: number) =>
      endSaPair({ suite: 'chacha20poly1305', mode: 'skip', id: 72, src: ADDR.sgw0, dst: ADDR.sgw1, seq });
    const rx = track(engineWith(impl, [make(0).in]));
    const p = sealedWithSeq(make, 0x01000000);
    const espAt = IPV4_HEADER_BYTES + make(0).out.skipHeader!.length;
    p.fill(0, espAt + 4, espAt + 8);
    expect(outcome(rx, p)).toBe('replay');
    expect(rx.saStats(make(0).in.id)?.espSeq).toBe(0);
  });

  it('end AH + ESP: both windows; a duplicate is caught at the AH', () => {
    const make = (seq: number) =>
      endSaPair({
        suite: 'aes256gcm',
        ah: 'hmac-sha256-128',
        mode: 'spi',
        id: 73,
        src: ADDR.sgw0,
        dst: ADDR.sgw1,
        seq,
      });
    const rx = track(engineWith(impl, [make(0).in]));
    const p7 = sealedWithSeq(make, 7);
    expect(outcome(rx, p7)).toBe('deliver');
    expect(outcome(rx, p7)).toBe('replay');
    expect(outcome(rx, sealedWithSeq(make, 6))).toBe('deliver');
    const stats = rx.saStats(make(0).in.id);
    expect({ ahSeq: stats?.ahSeq, espSeq: stats?.espSeq, packets: stats?.packets }).toEqual({
      ahSeq: 7,
      espSeq: 7,
      packets: 2n,
    });
  });

  it('next-hop AH: duplicate, edge and out of order', () => {
    const make = (seq: number) =>
      nexthopSaPair({
        alg: 'gmac-aes128',
        coverage: 'headers',
        mode: 'skip',
        id: 74,
        src: ADDR.sgw1,
        dst: ADDR.sgw0,
        seq,
        replayWindow: 256,
      });
    const rx = track(engineWith(impl, [make(0).in], { local: [ADDR.sgw0] }));
    // The wrapped datagram is a plain UDP packet for a local address: INBOUND verifies the layer and punts the
    // datagram to the policy (nexthop_plain).
    const inner = datagram(80, { dst: ADDR.sgw0, id: 300 });
    const check = (seq: number, want: string) => {
      const pair = make(seq - 1);
      const tx = engineWith('ts', [pair.out]);
      const p = runOne(tx, Op.WRAP, inner, pair.out.id).packet;
      tx.close();
      const r = runOne(rx, Op.INBOUND, p);
      expect(reasonName[r.reason], `seq ${seq}`).toBe(want);
      if (want === 'nexthop_plain') expect(hex(r.packet)).toBe(hex(inner));
    };
    check(300, 'nexthop_plain');
    check(300, 'replay');
    check(300 - 256, 'replay');
    check(300 - 255, 'nexthop_plain');
    check(299, 'nexthop_plain');
    check(301, 'nexthop_plain');
    check(299, 'replay');
  });
});

describe('[ts] replay window configuration', () => {
  it('rejects a window that is not a multiple of 64 in 64..4096, naming the field', () => {
    const base: SaDesc = endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 75, src: ADDR.sgw0, dst: ADDR.sgw1 }).in;
    for (const bad of [0, 32, 100, 8192]) {
      const e = track(engineWith('ts', []));
      expect(() => e.installSa({ ...base, replayWindow: bad })).toThrow(/replayWindow.*multiple of 64/);
    }
  });
});
