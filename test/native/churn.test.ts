// SA churn: batches run on native threads (processAsync) while JS installs, removes and rekeys SAs.
// Every packet must get a valid verdict, nothing may crash, and the counters must add up.
import { describe, expect, it } from 'vitest';
import { Batch, Op, Reason, Verdict, VERDICT_COUNTER_BASE, type SaDesc } from '../../src/engine/index.js';
import { ADDR, datagram, endSaPair, runMany } from '../engine/fixtures.js';
import { nativeEngine, toHex } from './addon.js';

const BATCH = 512;
const IN_FLIGHT = 4;
const ROUNDS = 6;

function totalVerdicts(c: BigUint64Array): bigint {
  const at = (v: number) => c[VERDICT_COUNTER_BASE + v];
  return at(Verdict.FORWARD) + at(Verdict.DELIVER) + at(Verdict.PUNT) + at(Verdict.DROP);
}

describe('SA churn under processAsync', () => {
  it('installs, removes and rekeys while batches run; every packet is delivered, punted unknown_key or dropped as replay', async () => {
    const live = endSaPair({
      suite: 'aes128gcm',
      ah: 'gmac-aes128',
      mode: 'skip',
      id: 1,
      src: ADDR.sgw0,
      dst: ADDR.sgw1,
    });
    const tx = nativeEngine([live.out]);
    const rx = nativeEngine([live.in], { local: [ADDR.sgw1] });
    const counters = rx.counters();
    const inner = datagram(1000);
    let delivered = 0,
      punted = 0,
      replayed = 0,
      processed = 0;

    for (let round = 0; round < ROUNDS; round++) {
      const batches: Batch[] = [];
      for (let b = 0; b < IN_FLIGHT; b++) {
        const sealed = runMany(
          tx,
          Op.ENCAP,
          Array.from({ length: BATCH }, () => inner),
          live.out.id,
        );
        const batch = new Batch({ capacity: BATCH });
        for (const s of sealed) batch.push(Op.INBOUND, s.packet);
        batches.push(batch);
      }
      const running = batches.map((batch) => rx.processAsync(batch));
      // Churn on the JS thread while the workers run: unrelated SAs come and go, and the live SA is
      // removed and reinstalled (a rekey to the same key tuple starts a fresh window).
      for (let k = 0; k < 300; k++) {
        const extra = endSaPair({
          suite: 'chacha20poly1305',
          mode: k % 2 ? 'skip' : 'spi',
          id: 100 + round * 1000 + k,
          src: ADDR.sgw2,
          dst: ADDR.sgw1,
          seed: 7000 + round * 1000 + k,
        });
        rx.installSa(extra.in);
        if (k > 0) rx.removeSa(extra.in.id - 1);
        if (k % 50 === 25) rx.removeSa(live.in.id);
        if (k % 50 === 40) rx.installSa(live.in as SaDesc);
      }
      await Promise.all(running);
      for (const batch of batches) {
        for (let i = 0; i < batch.count; i++) {
          const r = batch.result(i);
          if (r.verdict === Verdict.DELIVER) {
            expect(r.reason).toBe(Reason.none);
            expect(toHex(r.packet)).toBe(toHex(inner));
            delivered++;
          } else if (r.verdict === Verdict.PUNT) {
            expect(r.reason).toBe(Reason.unknown_key); // the live SA was removed at that moment
            punted++;
          } else {
            // Batches finish in any order: a later batch may move the window past an earlier one's numbers.
            expect([r.verdict, r.reason]).toEqual([Verdict.DROP, Reason.replay]);
            replayed++;
          }
          processed++;
        }
      }
      if (!rx.saStats(live.in.id)) rx.installSa(live.in);
    }
    expect(processed).toBe(ROUNDS * IN_FLIGHT * BATCH);
    expect(delivered).toBeGreaterThan(0);
    expect(totalVerdicts(counters)).toBe(BigInt(processed));
    expect(counters[VERDICT_COUNTER_BASE + Verdict.DELIVER]).toBe(BigInt(delivered));
    expect(counters[Reason.unknown_key]).toBe(BigInt(punted));
    expect(counters[Reason.replay]).toBe(BigInt(replayed));
    expect(counters[VERDICT_COUNTER_BASE + Verdict.DROP]).toBe(BigInt(replayed));
    tx.close();
    rx.close();
  });

  it('close() while a batch runs: the batch finishes on its snapshot, the engine refuses new work', async () => {
    const pair = endSaPair({ suite: 'aes256gcm', mode: 'spi', id: 5, src: ADDR.sgw0, dst: ADDR.sgw1 });
    const tx = nativeEngine([pair.out]);
    const rx = nativeEngine([pair.in]);
    const sealed = runMany(
      tx,
      Op.ENCAP,
      Array.from({ length: BATCH }, () => datagram(1400)),
      pair.out.id,
    );
    const batch = new Batch({ capacity: BATCH });
    for (const s of sealed) batch.push(Op.INBOUND, s.packet);
    const running = rx.processAsync(batch);
    rx.close();
    await running;
    for (let i = 0; i < batch.count; i++) expect(batch.result(i).verdict).toBe(Verdict.DELIVER);
    expect(() => rx.process(batch)).toThrow(/closed/);
    expect(rx.counters()[VERDICT_COUNTER_BASE + Verdict.DELIVER]).toBe(BigInt(BATCH));
    tx.close();
  });

  it('concurrent batches on one outbound SA never reuse a sequence number', async () => {
    const pair = endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 9, src: ADDR.sgw0, dst: ADDR.sgw1 });
    const tx = nativeEngine([pair.out]);
    const batches = Array.from({ length: IN_FLIGHT }, () => {
      const b = new Batch({ capacity: BATCH });
      for (let i = 0; i < BATCH; i++) b.push(Op.ENCAP, datagram(200), pair.out.id);
      return b;
    });
    await Promise.all(batches.map((b) => tx.processAsync(b)));
    const seqs = new Set<number>();
    for (const b of batches) {
      for (let i = 0; i < b.count; i++) {
        const p = b.result(i).packet;
        seqs.add(new DataView(p.buffer, p.byteOffset).getUint32(24));
      }
    }
    expect(seqs.size).toBe(IN_FLIGHT * BATCH);
    expect(tx.saStats(pair.out.id)?.espSeq).toBe(IN_FLIGHT * BATCH);
    tx.close();
  });
});
