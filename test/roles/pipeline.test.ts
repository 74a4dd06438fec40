// A role stopped with packets queued for its next engine call (a daemon's SIGTERM under traffic): the
// queued flush is cancelled with the role, so nothing runs on the engine that closes right after it.
import { afterEach, describe, expect, it } from 'vitest';
import { figure6Map } from '../../src/lab/figure6-world.js';
import { F6 } from '../../src/lab/scenarios/figure6-cases.js';
import { SETTLE_MS } from '../../src/lab/scenario.js';
import { probe } from '../../src/lab/traffic.js';
import { buildWorld, type World } from '../../src/lab/world.js';

process.env.MIPSEC_NATIVE = '1';

describe.each(['native', 'ts'] as const)('stopping a role under traffic on the %s engine', (impl) => {
  let world: World | undefined;
  afterEach(() => world?.close());

  it('queued jobs are dropped with the role: its engine closes and the clock runs on without an error', async () => {
    world = buildWorld({ map: await figure6Map(), engine: impl });
    const w = world;
    w.place('sgw1');
    w.network.runFor(SETTLE_MS);
    const smnEngine = w.engines.at(-1)!;
    let calls = 0;
    const process = smnEngine.process.bind(smnEngine);
    smnEngine.process = (batch) => {
      calls++;
      process(batch);
    };
    // The SMN's output hook queues each probe for its next engine call (a 0 ms timer): stop it before that.
    for (let i = 0; i < 10; i++) w.smn.send(probe(F6.home, F6.ch0, i));
    w.smn.close();
    smnEngine.close();
    expect(() => w.network.runFor(SETTLE_MS)).not.toThrow();
    expect(calls).toBe(0);
  });
});
