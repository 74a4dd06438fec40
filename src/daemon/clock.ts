// Wall-clock time for a daemon on a real network (MemoryNetwork brings its own virtual clock).
import type { Clock, Timer } from '../net/types.js';

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(delayMs: number, run: () => void): Timer {
    const handle = setTimeout(run, Math.max(0, delayMs));
    return { cancel: () => clearTimeout(handle) };
  },
};
