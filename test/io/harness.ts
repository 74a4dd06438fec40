// What the I/O loop tests start, kept so each test's afterEach stops and closes it all.
import { createEngine, NativeEngine, type Policy, type SaDesc } from '../../src/engine/index.js';
import type { IoLoop } from '../../src/engine/io.js';

export interface LoopRegistry {
  /** A native engine with these SAs, local addresses and policies, closed by closeAll(). */
  engineFor(sas?: readonly SaDesc[], local?: readonly string[], policies?: readonly Policy[]): NativeEngine;
  /** Loops stopped by closeAll(). */
  track(...loops: IoLoop[]): void;
  /** Stops every tracked loop, then closes every engine. */
  closeAll(): void;
}

export function loopRegistry(): LoopRegistry {
  const loops: IoLoop[] = [];
  const engines: NativeEngine[] = [];
  return {
    engineFor(sas = [], local = [], policies = []) {
      const engine = createEngine('native') as NativeEngine;
      for (const sa of sas) engine.installSa(sa);
      engine.setLocalAddresses(local);
      engine.setPolicies(policies);
      engines.push(engine);
      return engine;
    },
    track(...started) {
      loops.push(...started);
    },
    closeAll() {
      for (const loop of loops.splice(0)) loop.stop();
      for (const e of engines.splice(0)) e.close();
    },
  };
}
