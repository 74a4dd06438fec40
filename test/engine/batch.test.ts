// Batches: many packets of mixed ops in one call, each judged on its own; processAsync gives the same bytes.
process.env.MIPSEC_NATIVE = '1';
import { afterEach, describe, expect, it } from 'vitest';
import { Batch, Op, Reason, VERDICT_COUNTER_BASE, Verdict, type Engine, type OpCode } from '../../src/engine/index.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { ADDR, IMPLS, datagram, endSaPair, engineWith, hex, nexthopSaPair, runOne } from './fixtures.js';

const opened: Engine[] = [];
afterEach(() => {
  for (const e of opened.splice(0)) e.close();
});

const end = endSaPair({ suite: 'aes128gcm', ah: 'gmac-aes128', mode: 'skip', id: 131, src: ADDR.sgw0, dst: ADDR.sgw1 });
const hop = nexthopSaPair({
  alg: 'hmac-sha256-128',
  coverage: 'headers',
  mode: 'spi',
  id: 132,
  src: ADDR.sgw0,
  dst: ADDR.sgw1,
});

/** 256 packets: ENCAP, WRAP, IPIP_ENCAP, and INBOUND of garbage, round-robin. */
function fill(batch: Batch): { op: OpCode; want: number }[] {
  const plan: { op: OpCode; want: number }[] = [];
  for (let i = 0; i < batch.capacity; i++) {
    const d = datagram(20 + ((i * 37) % 1300), { id: i });
    switch (i % 4) {
      case 0:
        batch.push(Op.ENCAP, d, end.out.id);
        plan.push({ op: Op.ENCAP, want: Verdict.FORWARD });
        break;
      case 1:
        batch.push(Op.WRAP, d, hop.out.id);
        plan.push({ op: Op.WRAP, want: Verdict.FORWARD });
        break;
      case 2:
        batch.push(Op.IPIP_ENCAP, d, ipToU32(ADDR.ha), ipToU32(ADDR.smnCoa));
        plan.push({ op: Op.IPIP_ENCAP, want: Verdict.FORWARD });
        break;
      default:
        batch.push(Op.INBOUND, d.subarray(0, 19));
        plan.push({ op: Op.INBOUND, want: Verdict.DROP });
    }
  }
  return plan;
}

describe.each(IMPLS)('[%s] batches', (impl) => {
  it('256 mixed packets in one call; process and processAsync agree byte for byte; the receiver opens them all', async () => {
    const syncEngine = engineWith(impl, [end.out, hop.out]);
    const asyncEngine = engineWith(impl, [end.out, hop.out]);
    // The receiver opens the end layers; a next-hop layer around a plain datagram (for CH0) is punted with it, for
    // the policy to judge (docs/engine.md §5).
    const rx = engineWith(impl, [end.in, hop.in], { local: [ADDR.sgw1], routes: [{ prefix: '0.0.0.0/0', sa: 0 }] });
    opened.push(syncEngine, asyncEngine, rx);
    const a = new Batch({ capacity: 256 });
    const b = new Batch({ capacity: 256 });
    const plan = fill(a);
    fill(b);
    syncEngine.process(a);
    await asyncEngine.processAsync(b);
    for (let i = 0; i < 256; i++) {
      const ra = a.result(i);
      const rb = b.result(i);
      expect([i, ra.verdict]).toEqual([i, plan[i].want]);
      expect([rb.verdict, rb.reason, rb.sa, rb.nexthop, hex(rb.packet)]).toEqual([
        ra.verdict,
        ra.reason,
        ra.sa,
        ra.nexthop,
        hex(ra.packet),
      ]);
      if (plan[i].op === Op.ENCAP || plan[i].op === Op.WRAP) {
        const opened = runOne(rx, Op.INBOUND, ra.packet);
        const want = plan[i].op === Op.ENCAP ? [Verdict.DELIVER, Reason.none] : [Verdict.PUNT, Reason.nexthop_plain];
        const sent = datagram(20 + ((i * 37) % 1300), { id: i });
        expect([i, opened.verdict, opened.reason, hex(opened.packet)]).toEqual([i, ...want, hex(sent)]);
      }
    }
    const c = syncEngine.counters();
    expect([c[VERDICT_COUNTER_BASE + Verdict.FORWARD], c[VERDICT_COUNTER_BASE + Verdict.DROP], c[3]]).toEqual([
      192n,
      64n,
      64n,
    ]);
    expect(syncEngine.saStats(end.out.id)?.espSeq).toBe(64);
  });

  it('counters() is the same live array across calls', () => {
    const engine = engineWith(impl, []);
    opened.push(engine);
    const before = engine.counters();
    runOne(engine, Op.INBOUND, new Uint8Array(3));
    expect(engine.counters()).toBe(before);
    expect(before[3]).toBe(1n);
  });
});
