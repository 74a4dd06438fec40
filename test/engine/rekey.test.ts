// The packet limit of an out SA (SaDesc.maxPackets, docs/engine.md §4): ENCAP, WRAP and OUTBOUND protect punt a
// packet as given with reason `rekey` once the SA sealed that many, before any sequence number is taken; the
// punted datagram goes through again once the control plane installed the next SA and republished its policies.
// Both paths, byte for byte; in SAs ignore the field; a relay's new layer is exempt; bad values name the field.
// The soft limit (SaDesc.softPackets): the FORWARD that brings the count to it says rekey_due, once, naming the SA.
process.env.MIPSEC_NATIVE = '1';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Batch,
  COUNTER_SLOTS,
  Op,
  Reason,
  Verdict,
  createEngine,
  type Engine,
  type EngineImpl,
  type OpCode,
  type Policy,
  type SaDesc,
} from '../../src/engine/index.js';
import { ipToU32 } from '../../src/wire/addr.js';
import {
  ADDR,
  IMPLS,
  datagram,
  diffBytes,
  endSaPair,
  engineWith,
  espDatagram,
  hex,
  nexthopSaPair,
  runMany,
  runOne,
  type RunResult,
  outcomeOf,
} from './fixtures.js';

const opened: Engine[] = [];
afterEach(() => {
  for (const e of opened.splice(0)) e.close();
});

function make(
  impl: EngineImpl,
  sas: readonly SaDesc[],
  policies?: readonly Policy[],
  setup?: Parameters<typeof engineWith>[2],
): Engine {
  const e = engineWith(impl, sas, setup);
  if (policies) e.setPolicies(policies);
  opened.push(e);
  return e;
}

/** Runs `steps` on a fresh engine per path; every step's outcomes, bytes, and the counters must agree. */
function both(
  sas: readonly SaDesc[],
  steps: (e: Engine) => RunResult[][],
  policies?: readonly Policy[],
): RunResult[][] {
  const runs = IMPLS.map((impl) => {
    const e = make(impl, sas, policies);
    return { results: steps(e), counters: e.counters().slice(0, COUNTER_SLOTS) };
  });
  const [ts, native] = runs;
  ts.results.forEach((step, s) => {
    expect(step.map(outcomeOf), `step ${s}: ts vs native`).toEqual(native.results[s].map(outcomeOf));
    step.forEach((r, i) =>
      expect(hex(r.packet), `step ${s} packet ${i}: ${diffBytes(r.packet, native.results[s][i].packet)}`).toBe(
        hex(native.results[s][i].packet),
      ),
    );
  });
  expect(ts.counters, 'counters').toEqual(native.counters);
  return native.results;
}

const rekey = (sa: number) => ({ verdict: Verdict.PUNT, reason: Reason.rekey, sa, nexthop: 0 });
const sent = (sa: number, to: string) => ({ verdict: Verdict.FORWARD, reason: Reason.none, sa, nexthop: ipToU32(to) });

const end = endSaPair({
  suite: 'aes128gcm',
  ah: 'gmac-aes128',
  mode: 'skip',
  id: 1,
  src: ADDR.smnCoa,
  dst: ADDR.sgw0,
  mkid: { src: ADDR.smnHome },
});
const spiEnd = endSaPair({ suite: 'chacha20poly1305', mode: 'spi', id: 2, src: ADDR.smnCoa, dst: ADDR.sgw0 });
const hop = nexthopSaPair({
  alg: 'hmac-sha256-128',
  coverage: 'headers',
  mode: 'skip',
  id: 3,
  src: ADDR.smnCoa,
  dst: ADDR.sgw0,
});
const limited = (sa: SaDesc, maxPackets: number): SaDesc => ({ ...sa, maxPackets });
const soft = (sa: SaDesc, softPackets: number, maxPackets?: number): SaDesc => ({
  ...sa,
  softPackets,
  ...(maxPackets ? { maxPackets } : {}),
});
const due = (sa: number, to: string) => ({
  verdict: Verdict.FORWARD,
  reason: Reason.rekey_due,
  sa,
  nexthop: ipToU32(to),
});
const packets = (n: number, size = 90) => Array.from({ length: n }, (_, i) => datagram(size + i, { seed: i + 7 }));

const CONCURRENT_BATCHES = 8;

/** ENCAP with `sa` in CONCURRENT_BATCHES batches of 16 at once on native threads (processAsync); every result. */
async function concurrentEncap(e: Engine, sa: number) {
  const batches = Array.from({ length: CONCURRENT_BATCHES }, () => {
    const b = new Batch({ capacity: 16 });
    for (const p of packets(16, 60)) b.push(Op.ENCAP as OpCode, p, sa);
    return b;
  });
  await Promise.all(batches.map((b) => e.processAsync(b)));
  return batches.flatMap((b) => Array.from({ length: b.count }, (_, i) => b.result(i)));
}

describe('SaDesc.maxPackets, native and TS', () => {
  it('ENCAP: the packets beyond the limit are PUNT rekey, unchanged, and take no sequence number', () => {
    for (const pair of [end, spiEnd]) {
      const input = packets(5);
      const [r] = both([limited(pair.out, 3)], (e) => {
        const r = runMany(e, Op.ENCAP, input, pair.out.id);
        const s = e.saStats(pair.out.id)!;
        expect({ packets: s.packets, espSeq: s.espSeq, ahSeq: s.ahSeq }, e.impl).toEqual({
          packets: 3n,
          espSeq: 3,
          ahSeq: pair.out.ah ? 3 : 0,
        });
        expect(e.counters()[Reason.rekey], e.impl).toBe(2n);
        return [r];
      });
      expect(r.map(outcomeOf)).toEqual([
        ...Array(3).fill(sent(pair.out.id, ADDR.sgw0)),
        rekey(pair.out.id),
        rekey(pair.out.id),
      ]);
      expect(hex(r[3].packet)).toBe(hex(input[3]));
      expect(hex(r[4].packet)).toBe(hex(input[4]));
    }
  });

  it('limit 1 on ENCAP and WRAP; the limit is checked before no_room and seq_exhausted', () => {
    const input = packets(3);
    const [e1, w1, big, exhausted] = both(
      [
        limited(end.out, 1),
        limited(hop.out, 1),
        limited({ ...spiEnd.out, esp: { ...spiEnd.out.esp!, seq: 0xffffffff } }, 1),
      ],
      (e) => [
        runMany(e, Op.ENCAP, input, end.out.id),
        runMany(e, Op.WRAP, input, hop.out.id),
        [runOne(e, Op.ENCAP, datagram(1780), end.out.id)],
        [runOne(e, Op.ENCAP, input[0], spiEnd.out.id)],
      ],
    );
    expect(e1.map(outcomeOf)).toEqual([sent(end.out.id, ADDR.sgw0), rekey(end.out.id), rekey(end.out.id)]);
    expect(w1.map(outcomeOf)).toEqual([sent(hop.out.id, ADDR.sgw0), rekey(hop.out.id), rekey(hop.out.id)]);
    expect(hex(w1[2].packet)).toBe(hex(input[2]));
    expect(outcomeOf(big[0]), 'too big for the slot, but the SA is spent: rekey first').toEqual(rekey(end.out.id));
    // An SA under its limit whose sequence numbers ran out is still seq_exhausted (and seals nothing).
    expect(exhausted[0].reason).toBe(Reason.seq_exhausted);
  });

  it('WRAP punts the packet exactly as given (bytes beyond its total length kept)', () => {
    const inner = runOne(make('ts', [end.out]), Op.ENCAP, datagram(120), end.out.id).packet;
    const padded = Uint8Array.from([...inner, 0xaa, 0xbb, 0xcc]);
    const [r] = both([limited(hop.out, 1)], (e) => [runMany(e, Op.WRAP, [inner, padded], hop.out.id)]);
    expect(r.map(outcomeOf)).toEqual([sent(hop.out.id, ADDR.sgw0), rekey(hop.out.id)]);
    expect(hex(r[1].packet)).toBe(hex(padded));
  });

  it('OUTBOUND protect: a spent End-End or wrap SA punts the original datagram (nothing sealed, no sequence number taken)', () => {
    const policies: Policy[] = [{ prefix: '10.0.0.0/24', sa: end.out.id, wrap: hop.out.id }];
    const input = packets(3);
    // The wrap SA runs out first: the End-End SA must not have sealed (or numbered) the punted datagram.
    const [r] = both(
      [limited(end.out, 5), limited(hop.out, 2)],
      (e) => {
        const r = runMany(e, Op.OUTBOUND, input);
        expect(e.saStats(end.out.id)!.espSeq, e.impl).toBe(2);
        expect(e.saStats(end.out.id)!.packets, e.impl).toBe(2n);
        return [r];
      },
      policies,
    );
    expect(r.map(outcomeOf)).toEqual([sent(end.out.id, ADDR.sgw0), sent(end.out.id, ADDR.sgw0), rekey(hop.out.id)]);
    expect(hex(r[2].packet)).toBe(hex(input[2]));
    const [s] = both([limited(end.out, 1), hop.out], (e) => [runMany(e, Op.OUTBOUND, input)], policies);
    expect(s.map(outcomeOf)).toEqual([sent(end.out.id, ADDR.sgw0), rekey(end.out.id), rekey(end.out.id)]);
    expect(hex(s[1].packet)).toBe(hex(input[1]));
  });

  it('a punted datagram goes through once the next SA is installed and the policy table republished; the receiver opens it', () => {
    const next = endSaPair({
      suite: 'aes256gcm',
      ah: 'hmac-sha256-128',
      mode: 'skip',
      id: 11,
      src: ADDR.smnCoa,
      dst: ADDR.sgw0,
      mkid: { src: ADDR.smnHome },
    });
    const input = packets(3);
    const table = (sa: number): Policy[] => [{ prefix: '10.0.0.0/24', sa, wrap: [hop.out.id] }];
    const [first, again, opened_] = both(
      [limited(end.out, 2), hop.out],
      (e) => {
        const first = runMany(e, Op.OUTBOUND, input);
        // The control plane's rotation: next SA in, policies republished, the spent one out, the punt re-injected.
        e.installSa(limited(next.out, 2));
        e.setPolicies(table(next.out.id));
        e.removeSa(end.out.id);
        const again = [runOne(e, Op.OUTBOUND, first[2].packet)];
        const rx = make(e.impl, [end.in, next.in, hop.in], undefined, { local: [ADDR.sgw0] });
        const opened_ = runMany(rx, Op.INBOUND, [first[0].packet, first[1].packet, again[0].packet]);
        return [first, again, opened_];
      },
      table(end.out.id),
    );
    expect(first.map(outcomeOf)).toEqual([sent(end.out.id, ADDR.sgw0), sent(end.out.id, ADDR.sgw0), rekey(end.out.id)]);
    expect(hex(first[2].packet)).toBe(hex(input[2]));
    expect(outcomeOf(again[0])).toEqual(sent(next.out.id, ADDR.sgw0));
    expect(opened_.map((r) => [r.verdict, r.sa])).toEqual([
      [Verdict.DELIVER, end.in.id],
      [Verdict.DELIVER, end.in.id],
      [Verdict.DELIVER, next.in.id],
    ]);
    opened_.forEach((r, i) => expect(hex(r.packet)).toBe(hex(input[i])));
  });

  it('in SAs ignore maxPackets (even a value an out SA would refuse)', () => {
    const tx = make('ts', [end.out]);
    const sealed = runMany(tx, Op.ENCAP, packets(3), end.out.id).map((r) => r.packet);
    for (const maxPackets of [1, 0]) {
      const [r] = both([limited(end.in, maxPackets)], (e) => [runMany(e, Op.INBOUND, sealed)]);
      expect(r.map((x) => x.verdict)).toEqual([Verdict.DELIVER, Verdict.DELIVER, Verdict.DELIVER]);
    }
  });

  it("a relay's new layer is exempt: INBOUND relays through a spent next-hop SA that WRAP refuses", () => {
    const inHop = nexthopSaPair({ alg: 'gmac-aes128', mode: 'spi', id: 21, src: ADDR.sgw1, dst: ADDR.sgw0 });
    const relay = nexthopSaPair({
      alg: 'gmac-aes128',
      coverage: 'headers',
      mode: 'skip',
      id: 22,
      src: ADDR.sgw0,
      dst: ADDR.sgw2,
    });
    const tx = make('ts', [inHop.out]);
    const arriving = [1, 2, 3].map(
      (i) => runOne(tx, Op.WRAP, espDatagram(80 + i, { dst: '10.9.1.1' }), inHop.out.id).packet,
    );
    const setup = { local: [ADDR.sgw0], routes: [{ prefix: '10.9.0.0/16', sa: relay.out.id }] };
    const runs = IMPLS.map((impl) => {
      const e = make(impl, [inHop.in, limited(relay.out, 1)], undefined, setup);
      return [...runMany(e, Op.INBOUND, arriving), runOne(e, Op.WRAP, espDatagram(70), relay.out.id)];
    });
    expect(runs[0].map(outcomeOf)).toEqual(runs[1].map(outcomeOf));
    runs[0].forEach((r, i) => expect(hex(r.packet)).toBe(hex(runs[1][i].packet)));
    expect(runs[1].map(outcomeOf)).toEqual([...Array(3).fill(sent(inHop.in.id, ADDR.sgw2)), rekey(relay.out.id)]);
  });

  it('refuses a maxPackets outside 1..2^32-1 on an out SA, naming the field', () => {
    for (const impl of IMPLS) {
      const e = createEngine(impl);
      opened.push(e);
      for (const bad of [0, -1, 1.5, 2 ** 32, '5' as never, Number.NaN]) {
        expect(() => e.installSa(limited(end.out, bad)), `${impl} ${String(bad)}`).toThrow(/maxPackets/);
      }
      e.installSa(limited(end.out, 2 ** 32 - 1));
      expect(runOne(e, Op.ENCAP, datagram(60), end.out.id).verdict).toBe(Verdict.FORWARD);
    }
  });

  it('native, concurrent batches: at most a little overshoot, never a gap or a reused sequence number', async () => {
    const limit = 40;
    const e = make('native', [limited(spiEnd.out, limit)]);
    const results = await concurrentEncap(e, spiEnd.out.id);
    const forwarded = results.filter((r) => r.verdict === Verdict.FORWARD).length;
    expect(results.every((r) => r.verdict === Verdict.FORWARD || r.reason === Reason.rekey)).toBe(true);
    expect(forwarded).toBeGreaterThanOrEqual(limit);
    expect(forwarded).toBeLessThan(limit + CONCURRENT_BATCHES); // one in flight per concurrent batch at most
    const s = e.saStats(spiEnd.out.id)!;
    expect([s.packets, s.espSeq]).toEqual([BigInt(forwarded), forwarded]);
  });
});

describe('SaDesc.softPackets, native and TS', () => {
  it('ENCAP: the packet that reaches the soft limit is sealed and says rekey_due, once; the hard limit still punts', () => {
    for (const pair of [end, spiEnd]) {
      const input = packets(5);
      const [r] = both([soft(pair.out, 2, 4)], (e) => {
        const r = runMany(e, Op.ENCAP, input, pair.out.id);
        expect(e.counters()[Reason.rekey_due], e.impl).toBe(1n);
        expect(e.saStats(pair.out.id)!.packets, e.impl).toBe(4n);
        return [r];
      });
      const to = ADDR.sgw0;
      expect(r.map(outcomeOf)).toEqual([
        sent(pair.out.id, to),
        due(pair.out.id, to),
        sent(pair.out.id, to),
        sent(pair.out.id, to),
        rekey(pair.out.id),
      ]);
    }
  });

  it('WRAP: a soft limit of 1 without a hard limit says rekey_due on the first packet and never again', () => {
    const [r] = both([soft(hop.out, 1)], (e) => [runMany(e, Op.WRAP, packets(3), hop.out.id)]);
    expect(r.map(outcomeOf)).toEqual([
      due(hop.out.id, ADDR.sgw0),
      sent(hop.out.id, ADDR.sgw0),
      sent(hop.out.id, ADDR.sgw0),
    ]);
  });

  it('OUTBOUND protect names the SA of the chain that reached its soft limit (the End-End one first)', () => {
    const policies: Policy[] = [{ prefix: '10.0.0.0/24', sa: end.out.id, wrap: hop.out.id }];
    const [r] = both([soft(end.out, 3), soft(hop.out, 2)], (e) => [runMany(e, Op.OUTBOUND, packets(4))], policies);
    expect(r.map(outcomeOf)).toEqual([
      sent(end.out.id, ADDR.sgw0),
      due(hop.out.id, ADDR.sgw0),
      due(end.out.id, ADDR.sgw0),
      sent(end.out.id, ADDR.sgw0),
    ]);
    const [s] = both([soft(end.out, 2), soft(hop.out, 2)], (e) => [runMany(e, Op.OUTBOUND, packets(3))], policies);
    expect(s.map(outcomeOf)).toEqual([
      sent(end.out.id, ADDR.sgw0),
      due(end.out.id, ADDR.sgw0),
      sent(end.out.id, ADDR.sgw0),
    ]);
  });

  it("a relay's new layer counts too: its FORWARD names the relaying SA when it reaches the soft limit", () => {
    const inHop = nexthopSaPair({ alg: 'gmac-aes128', mode: 'spi', id: 21, src: ADDR.sgw1, dst: ADDR.sgw0 });
    const relay = nexthopSaPair({
      alg: 'gmac-aes128',
      coverage: 'headers',
      mode: 'skip',
      id: 22,
      src: ADDR.sgw0,
      dst: ADDR.sgw2,
    });
    const tx = make('ts', [inHop.out]);
    const arriving = [1, 2, 3].map(
      (i) => runOne(tx, Op.WRAP, espDatagram(80 + i, { dst: '10.9.1.1' }), inHop.out.id).packet,
    );
    const setup = { local: [ADDR.sgw0], routes: [{ prefix: '10.9.0.0/16', sa: relay.out.id }] };
    const runs = IMPLS.map((impl) =>
      runMany(make(impl, [inHop.in, soft(relay.out, 2)], undefined, setup), Op.INBOUND, arriving),
    );
    expect(runs[0].map(outcomeOf)).toEqual(runs[1].map(outcomeOf));
    runs[0].forEach((r, i) => expect(hex(r.packet)).toBe(hex(runs[1][i].packet)));
    expect(runs[1].map(outcomeOf)).toEqual([
      sent(inHop.in.id, ADDR.sgw2),
      due(relay.out.id, ADDR.sgw2),
      sent(inHop.in.id, ADDR.sgw2),
    ]);
  });

  it('refuses a softPackets outside 1..2^32-1 or above maxPackets on an out SA, naming the field; in SAs ignore it', () => {
    for (const impl of IMPLS) {
      const e = createEngine(impl);
      opened.push(e);
      for (const bad of [0, -1, 1.5, 2 ** 32, '5' as never])
        expect(() => e.installSa(soft(end.out, bad)), `${impl} ${String(bad)}`).toThrow(/softPackets/);
      expect(() => e.installSa(soft(end.out, 5, 4)), impl).toThrow(/softPackets/);
      e.installSa(soft(end.out, 4, 4));
      e.installSa(soft(end.in, 0));
    }
  });

  it('native, concurrent batches: exactly one packet says rekey_due', async () => {
    const e = make('native', [soft(spiEnd.out, 40)]);
    const results = await concurrentEncap(e, spiEnd.out.id);
    expect(results.every((r) => r.verdict === Verdict.FORWARD)).toBe(true);
    expect(results.filter((r) => r.reason === Reason.rekey_due).map((r) => r.sa)).toEqual([spiEnd.out.id]);
    expect(e.counters()[Reason.rekey_due]).toBe(1n);
  });
});
