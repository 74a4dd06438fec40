// Picks a data path: the native addon, or the TypeScript reference path when the addon cannot load.
import { loadAddon } from './addon.js';
import { NativeEngine } from './native.js';
import { RefEngine } from './ref/engine.js';
import type { Engine, EngineImpl } from './types.js';

export * from './types.js';
export { Batch } from './batch.js';
export type { BatchOptions, PacketResult } from './batch.js';
export { NativeEngine, RefEngine };

let warned = false;

/**
 * Creates an engine. `impl` forces a path; by default the native one is used when it loads,
 * else the TS path with one warning line. MIPSEC_NATIVE=1 makes a missing addon an error.
 */
export function createEngine(impl?: EngineImpl): Engine {
  if (impl === 'ts') return new RefEngine();
  const { binding, error } = loadAddon();
  if (binding) return new NativeEngine(binding);
  if (impl === 'native' || process.env.MIPSEC_NATIVE === '1') {
    throw new Error(
      `mipsec: native engine required but the addon did not load: ${error?.message}. Rebuild it with \`npm rebuild ` +
        `mipsec\` (needs python3, make, g++).`,
    );
  }
  if (!warned) {
    warned = true;
    process.emitWarning(
      `native addon unavailable (${error?.message?.split('\n')[0]}); using the TypeScript data path`,
      { code: 'MIPSEC_NO_NATIVE' },
    );
  }
  return new RefEngine();
}
