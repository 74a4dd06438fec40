// Handover (issue 4, item 6): one SMN with a continuous flow to CH0 moves home → Site 1 → Site 2 →
// outside → home. No move may lose the registration, and traffic must always resume; the figures
// (packets lost, time to resume) are printed per move. Both engines.
import { afterEach, describe, expect, it } from 'vitest';
import { figure6World } from '../../src/lab/figure6-world.js';
import { moveFigures } from '../../src/lab/handover.js';
import { F6 } from '../../src/lab/scenarios/figure6-cases.js';
import { Flow } from '../../src/lab/traffic.js';
import type { World } from '../../src/lab/world.js';

process.env.MIPSEC_NATIVE = '1';
const DWELL_MS = 3000;
const ROUTE = [
  { name: 'home → Site 1', where: 'sgw1', careOf: F6.coa1 },
  { name: 'Site 1 → Site 2', where: 'sgw2', careOf: F6.coa2 },
  { name: 'Site 2 → outside', where: 'outside', careOf: F6.out },
  { name: 'outside → home', where: 'home', careOf: F6.home },
];

describe.each(['native', 'ts'] as const)('handover on the %s engine', (engine) => {
  let world: World | undefined;
  afterEach(() => world?.close());

  it('home → Site 1 → Site 2 → outside → home with a flow every 20 ms: registration kept, traffic resumes after every move', async () => {
    world = await figure6World({ engine });
    const w = world;
    const flow = new Flow(
      w.network.clock,
      w.smnHost,
      (p) => w.smn.send(p),
      () => w.smn.addressFor(F6.ch0),
      F6.ch0,
      20,
    );
    flow.start();
    w.network.runFor(1000);
    const moves: { name: string; at: number }[] = [];
    for (const step of ROUTE) {
      moves.push({ name: step.name, at: w.network.clock.now() });
      w.place(step.where);
      w.network.runFor(DWELL_MS);
      if (step.where === 'home') {
        expect(w.smn.registration.state).toBe('home');
        expect(w.ha.bindings()).toEqual([]);
      } else {
        expect(w.smn.registration.state).toBe('registered');
        expect(w.ha.bindings().map((b) => b.careOf)).toEqual([step.careOf]);
      }
    }
    flow.stop();
    const figures = moveFigures(flow, moves, w.network.clock.now());
    console.log(
      `handover figures (${engine} engine, probe every 20 ms, 1 ms links):\n${figures.map((f) => `  ${f.move.padEnd(18)} lost ${String(f.lost).padStart(2)} of ${f.sent}, traffic again after ${f.resumeMs} ms`).join('\n')}`,
    );
    for (const f of figures) {
      expect(f.resumeMs, f.move).toBeDefined();
      expect(f.resumeMs!, f.move).toBeLessThan(1000);
      expect(f.lost, f.move).toBeLessThan(f.sent / 2);
    }
  });
});
