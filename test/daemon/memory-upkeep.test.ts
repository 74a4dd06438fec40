// The daemon's memory upkeep (src/daemon/memory-upkeep.ts): a full collection once the heap in use grew by the slack,
// none while it did not.
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { startMemoryUpkeep, type MemoryUpkeep } from '../../src/daemon/memory-upkeep.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('memory upkeep', () => {
  let upkeep: MemoryUpkeep | undefined;
  afterEach(() => upkeep?.stop());

  it('asks for a full collection once the heap in use grew past the slack, not before', async () => {
    const majors: number[] = [];
    const observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries())
        if ((e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR)
          majors.push(e.startTime);
    });
    observer.observe({ entryTypes: ['gc'] });
    try {
      upkeep = startMemoryUpkeep(50, 64 * 1024 * 1024);
      await sleep(300);
      expect(upkeep.collections).toBe(0);
      upkeep.stop();
      // Objects that survive long enough to reach the old space, then die there: key churn in small.
      let kept: object[] = [];
      upkeep = startMemoryUpkeep(50, 1024 * 1024);
      for (let round = 0; round < 20; round++) {
        kept = Array.from({ length: 20_000 }, (_, i) => ({ id: i, tuple: `${round}|${i}`, seen: [i, round] }));
        await sleep(20);
      }
      expect(kept.length).toBe(20_000);
      await sleep(300);
      expect(upkeep.collections).toBeGreaterThanOrEqual(1);
      expect(majors.length).toBeGreaterThanOrEqual(1);
    } finally {
      observer.disconnect();
    }
  });
});
