// Wall-clock time for a daemon on a real network (MemoryNetwork brings its own virtual clock).
import type { Clock, Timer } from './types.js';

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(delayMs: number, run: () => void): Timer {
    // A 0 ms timer is a role's "this tick" (a punted first packet, re-injected once its SA is in): setImmediate runs it
    // after the current I/O callbacks; setTimeout would wait for the next timer phase, a millisecond or more.
    if (delayMs <= 0) {
      const immediate = setImmediate(run);
      return { cancel: () => clearImmediate(immediate) };
    }
    const handle = setTimeout(run, delayMs);
    return { cancel: () => clearTimeout(handle) };
  },
};
