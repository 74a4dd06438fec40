// The draft's §3 cases end to end on both data paths: §3.2 (three steps), §3.4 (Figure 4),
// Figure 1 nesting, §3.5 (outside correspondents) and the Figure 2 chain with 2..6 SGWs.
import { afterEach, describe, expect, it } from 'vitest';
import { endAhEsp, nextAh, SGW, smnId, udp } from '../../src/lab/formats.js';
import { stackDiff } from '../../src/lab/stacks.js';
import { runScenario, type ScenarioRun } from '../../src/lab/scenario.js';
import { chainScenario, section3Scenarios } from '../../src/lab/scenarios/section3.js';

process.env.MIPSEC_NATIVE = '1';

describe.each(['native', 'ts'] as const)('draft §3 on the %s engine', (engine) => {
  let run: ScenarioRun | undefined;
  afterEach(() => run?.world.close());

  for (const s of section3Scenarios) {
    it(`${s.section} ${s.title}`, async () => {
      run = await runScenario(s, engine);
      expect(run.registered).toBe(true);
      expect(run.echoed).toBe(true);
      expect(stackDiff(s.expect, run.stacks)).toEqual([]);
    });
  }

  for (const n of [2, 3, 4, 5, 6]) {
    it(`Figure 2 chain of ${n} SGWs: Next-hop AH replaced at each hop, equal packet size on every hop`, async () => {
      const s = chainScenario(n);
      run = await runScenario(s, engine);
      expect(run.echoed).toBe(true);
      const smn = smnId(s.home);
      const end = `sgw${n}`;
      const endAddr = run.world.map.sgw(end)!.outside;
      const data = endAhEsp(s.careOf, endAddr, smn, SGW, udp(s.home, s.ch, 40000, 7));
      // The request, hop by hop: SMN → SGW1 → … → SGW(n), each with its own Next-hop AH around the same End-End layer.
      const request = run.hops.filter((h) => h.stack.includes('UDP(40000>7)') && h.stack.includes('AH[next]'));
      const sgwAddr = (i: number) => run!.world.map.sgw(`sgw${i}`)!.outside;
      const expected = [
        { from: 'smn', to: 'sgw1', stack: nextAh(s.careOf, sgwAddr(1), smn, SGW, data) },
        ...Array.from({ length: n - 1 }, (_, i) => ({
          from: `sgw${i + 1}`,
          to: `sgw${i + 2}`,
          stack: nextAh(sgwAddr(i + 1), sgwAddr(i + 2), SGW, SGW, data),
        })),
      ];
      expect(request.map(({ from, to, stack }) => ({ from, to, stack }))).toEqual(expected);
      // Between SGWs the size never changes; the SMN's hop carries its 4-byte MKID in the outer SKIP header.
      const sizes = request.map((h) => h.bytes);
      expect(new Set(sizes.slice(1)).size).toBe(1);
      expect(sizes[0] - sizes[1]).toBe(4);
      // Every SGW replaced a layer it verified (one relay per direction at least), none refused anything after the first failure.
      for (let i = 1; i < n; i++) expect(run.world.sgws.get(`sgw${i}`)!.counters().relay).toBeGreaterThanOrEqual(2);
    });
  }
});
