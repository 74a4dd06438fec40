// A daemon's memory upkeep, once a minute for the whole process (so the CLI starts it, not runDaemon, which tests run
// in-process). Under key churn every new packet key leaves objects that live as long as its SA; they die in V8's old
// space, which V8 lets grow well past what is live before its next full collection (it judges by allocation, and a
// daemon whose packets stay native allocates little): bench soak saw the heap in use climb 15 → 22 MiB in 20 min
// while a snapshot's full collection left 17 of it, and RSS followed. So when the heap in use grew by HEAP_SLACK since
// the last upkeep's collection, the upkeep asks V8 for a full one (as a task of its own, not inside a callback), and
// then hands the malloc arenas' free memory back to the kernel (the I/O workers' and V8's threads' arenas).
import v8 from 'node:v8';
import vm from 'node:vm';
import { trimMalloc } from '../engine/addon.js';

const UPKEEP_MS = 60_000;
const HEAP_SLACK_BYTES = 2 * 1024 * 1024;

type Gc = (options: { type: 'major'; execution: 'async' }) => Promise<void>;

/** V8's gc(), exposed for this process (the flag takes effect for a new context). */
function exposedGc(): Gc {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as Gc;
}

export interface MemoryUpkeep {
  /** Full collections the upkeep asked for, and upkeeps after which malloc gave memory back. */
  readonly collections: number;
  readonly trims: number;
  stop(): void;
}

export function startMemoryUpkeep(intervalMs = UPKEEP_MS, slackBytes = HEAP_SLACK_BYTES): MemoryUpkeep {
  const gc = exposedGc();
  const used = () => v8.getHeapStatistics().used_heap_size;
  let floor = used();
  let busy = false;
  const state = { collections: 0, trims: 0 };
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    const collect = used() > floor + slackBytes ? gc({ type: 'major', execution: 'async' }) : undefined;
    void Promise.resolve(collect)
      .then(() => {
        if (collect) {
          state.collections++;
          floor = used();
        }
        if (trimMalloc()) state.trims++;
      })
      .finally(() => (busy = false));
  }, intervalMs).unref();
  return {
    get collections() {
      return state.collections;
    },
    get trims() {
      return state.trims;
    },
    stop: () => clearInterval(timer),
  };
}
