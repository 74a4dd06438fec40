// SaDesc.selectorMiss (docs/engine.md §4): an inbound End-End SA with selectorMiss 'punt' hands a datagram outside
// its selectors to the control plane (PUNT selector, packet = the opened datagram, SA = this SA) instead of
// dropping it; windows are committed alike, saStats counts only what was delivered. Both paths, same bytes.
process.env.MIPSEC_NATIVE = '1';
import { describe, expect, it } from 'vitest';
import { Op, Reason, Verdict, type Engine, type SaDesc } from '../../src/engine/index.js';
import {
  ADDR,
  IMPLS,
  MODES,
  datagram,
  endSaPair,
  engineWith,
  hex,
  nexthopSaPair,
  runOne,
  closedAfterEach,
} from './fixtures.js';

const track = closedAfterEach();

const selectors = { src: ['10.1.0.0/16'], dst: ['10.0.0.0/24'] };

describe('selectorMiss, native and TS', () => {
  for (const mode of MODES) {
    it(`'punt' (${mode}): a datagram outside the selectors is punted with the SA and the opened datagram; windows committed`, () => {
      const pair = endSaPair({
        suite: 'aes256gcm',
        ah: mode === 'skip' ? 'hmac-sha256-128' : undefined,
        mode,
        id: 51,
        src: ADDR.sgw1,
        dst: ADDR.sgw0,
      });
      const inside = datagram(90, { src: ADDR.smnCoa, dst: ADDR.ch0 });
      const outside = datagram(77, { src: ADDR.smnCoa, dst: '8.8.8.8' });
      const tx = track(engineWith('ts', [pair.out]));
      const sealed = [inside, outside].map((d) => runOne(tx, Op.ENCAP, d, pair.out.id).packet);
      const results = IMPLS.map((impl) => {
        const rx = track(engineWith(impl, [{ ...pair.in, selectors, selectorMiss: 'punt' }]));
        const got = sealed.map((p) => runOne(rx, Op.INBOUND, p));
        const again = runOne(rx, Op.INBOUND, sealed[1]);
        return { got, again, selectorCount: rx.counters()[Reason.selector], stats: rx.saStats(pair.in.id) };
      });
      for (const { got, again, selectorCount, stats } of results) {
        expect(got.map((r) => [r.verdict, r.reason, r.sa])).toEqual([
          [Verdict.DELIVER, Reason.none, pair.in.id],
          [Verdict.PUNT, Reason.selector, pair.in.id],
        ]);
        expect(hex(got[0].packet)).toBe(hex(inside));
        expect(hex(got[1].packet), 'the punted packet is the opened datagram').toBe(hex(outside));
        expect([again.verdict, again.reason], 'its sequence number was used up').toEqual([Verdict.DROP, Reason.replay]);
        expect(selectorCount).toBe(1n);
        expect(stats?.packets, 'only delivered datagrams count').toBe(1n);
      }
    });
  }

  it("default and 'drop' drop a miss as before; an SA without selectors delivers whatever it opens", () => {
    const pair = endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 52, src: ADDR.sgw1, dst: ADDR.sgw0 });
    const outside = datagram(60, { src: ADDR.smnCoa, dst: '8.8.8.8' });
    for (const impl of IMPLS) {
      for (const desc of [
        { ...pair.in, selectors },
        { ...pair.in, selectors, selectorMiss: 'drop' as const },
        { ...pair.in, selectorMiss: 'punt' as const },
      ]) {
        const tx = track(engineWith('ts', [pair.out]));
        const rx = track(engineWith(impl, [desc]));
        const r = runOne(rx, Op.INBOUND, runOne(tx, Op.ENCAP, outside, pair.out.id).packet);
        const want = desc.selectors ? [Verdict.DROP, Reason.selector] : [Verdict.DELIVER, Reason.none];
        expect([impl, desc.selectorMiss, r.verdict, r.reason]).toEqual([impl, desc.selectorMiss, ...want]);
      }
    }
  });

  it("is refused on role nexthop and for values other than 'drop' | 'punt'; ignored on an out SA", () => {
    const end = endSaPair({ suite: 'aes128gcm', mode: 'spi', id: 53, src: ADDR.sgw1, dst: ADDR.sgw0 });
    const hop = nexthopSaPair({ alg: 'gmac-aes128', mode: 'spi', id: 54, src: ADDR.sgw1, dst: ADDR.sgw0 });
    for (const impl of IMPLS) {
      const e = track(engineWith(impl, []));
      expect(() => e.installSa({ ...hop.in, selectorMiss: 'punt' } as SaDesc), impl).toThrow(
        /selectorMiss applies to role 'end' only/,
      );
      expect(() => e.installSa({ ...end.in, selectorMiss: 'keep' } as unknown as SaDesc), impl).toThrow(
        /selectorMiss must be 'drop', 'punt' or \{ outbound: table \}, got "keep"/,
      );
      e.installSa({ ...end.out, selectors, selectorMiss: 'punt' });
      expect(runOne(e, Op.ENCAP, datagram(60), end.out.id).verdict).toBe(Verdict.FORWARD);
    }
  });
});
