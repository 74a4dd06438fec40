// Issue 10 hole 13 (replay across a restart): an inbound SA installed with a replay floor treats every
// sequence number up to it as already seen (docs/engine.md), on both engines, for ESP and for AH + ESP.
process.env.MIPSEC_NATIVE = '1';
import { afterEach, describe, expect, it } from 'vitest';
import { Op, Verdict, reasonName, type Engine } from '../../src/engine/index.js';
import { ADDR, datagram, endSaPair, engineWith, runOne, type SaPair } from '../engine/fixtures.js';

const opened: Engine[] = [];
afterEach(() => {
  for (const e of opened.splice(0)) e.close();
});

function sealed(make: (seq: number) => SaPair, seq: number): Uint8Array {
  const tx = engineWith('ts', [make(seq - 1).out]);
  const packet = runOne(tx, Op.ENCAP, datagram(80, { id: seq & 0xffff }), make(0).out.id).packet;
  tx.close();
  return packet;
}

function outcome(rx: Engine, packet: Uint8Array): string {
  const r = runOne(rx, Op.INBOUND, packet);
  return r.verdict === Verdict.DELIVER ? 'deliver' : reasonName[r.reason];
}

describe.each(['native', 'ts'] as const)('[%s] hole 13: replayFloor', (impl) => {
  describe.each([undefined, 'hmac-sha256-128'] as const)('ESP with AH %s', (ah) => {
    const make = (seq: number) => endSaPair({ suite: 'aes128gcm', ah, mode: 'skip', id: 73, src: ADDR.sgw0, dst: ADDR.sgw1, seq });
    const receiver = (replayFloor?: number): Engine => {
      const rx = engineWith(impl, [{ ...make(0).in, replayFloor }]);
      opened.push(rx);
      return rx;
    };

    it('hole 13: a packet captured before a restart is a replay after it (sequence <= floor)', () => {
      const captured = [1, 40, 500, 2000].map((seq) => sealed(make, seq));
      const before = receiver();
      for (const p of captured) expect(outcome(before, p)).toBe('deliver');
      const after = receiver(before.saStats(make(0).in.id)!.espSeq);
      for (const p of captured) expect(outcome(after, p)).toBe('replay');
      expect(Number(after.counters()[18])).toBe(captured.length);
      expect(after.saStats(make(0).in.id)?.espSeq).toBe(2000);
    });

    it('the first number above the floor is accepted once, and the window moves on from there', () => {
      const rx = receiver(2000);
      expect(outcome(rx, sealed(make, 2001))).toBe('deliver');
      expect(outcome(rx, sealed(make, 2001))).toBe('replay');
      expect(outcome(rx, sealed(make, 5000))).toBe('deliver');
      expect(outcome(rx, sealed(make, 4990))).toBe('deliver');
      expect(rx.saStats(make(0).in.id)?.espSeq).toBe(5000);
    });

    it('a floor out of range is refused at install', () => {
      expect(() => receiver(2 ** 32)).toThrow(/replayFloor/);
      expect(() => receiver(-1)).toThrow(/replayFloor/);
    });
  });
});
