// The draft's Figure 6 cases (§4.4, §4.5.1–§4.5.7) end to end on the in-memory network, with both
// data paths: data both ways, and every packet on every link against the draft's [Packet Format].
import { afterEach, describe, expect, it } from 'vitest';
import { figure6Scenarios } from '../../src/lab/scenarios/figure6-cases.js';
import { runScenario, type ScenarioRun } from '../../src/lab/scenario.js';

process.env.MIPSEC_NATIVE = '1';

describe.each(['native', 'ts'] as const)('Figure 6 on the %s engine', (engine) => {
  let run: ScenarioRun | undefined;
  afterEach(() => run?.world.close());

  for (const s of figure6Scenarios) {
    it(`${s.section} ${s.title}`, async () => {
      run = await runScenario(s, engine);
      expect(run.registered).toBe(true);
      if (s.traffic !== 'registration') expect(run.echoed).toBe(true);
      expect(run.stacks).toEqual(s.expect);
    });
  }
});
