// A virtual clock with an event queue: simulated time only moves when events run, so tests are
// fast and deterministic. Events at the same instant run in the order they were scheduled.
import type { Clock, Timer } from './types.js';

interface QueuedEvent {
  at: number;
  seq: number;
  run: () => void;
  cancelled: boolean;
}

/** Guard against run() spinning forever on a periodic timer. */
const DEFAULT_MAX_EVENTS = 1_000_000;

export class VirtualClock implements Clock {
  private time: number;
  private seq = 0;
  /** Binary min-heap on (at, seq). */
  private readonly heap: QueuedEvent[] = [];

  constructor(startMs = 0) {
    if (!Number.isFinite(startMs))
      throw new RangeError(`virtual clock start must be a finite number of ms, got ${startMs}`);
    this.time = startMs;
  }

  now(): number {
    return this.time;
  }

  setTimer(delayMs: number, run: () => void): Timer {
    if (!Number.isFinite(delayMs) || delayMs < 0)
      throw new RangeError(`timer delay must be a finite number of ms >= 0, got ${delayMs}`);
    const event: QueuedEvent = { at: this.time + delayMs, seq: this.seq++, run, cancelled: false };
    this.push(event);
    return {
      cancel: () => {
        event.cancelled = true;
      },
    };
  }

  /** Events still waiting (cancelled ones excluded). */
  pending(): number {
    return this.heap.filter((e) => !e.cancelled).length;
  }

  /**
   * Runs events in time order. With `untilMs`, stops before the first event later than it and
   * leaves the clock at `untilMs`; without, runs until the queue is empty. Returns the number of
   * events run. Throws after `maxEvents` so a periodic timer cannot hang a test.
   */
  run(untilMs = Infinity, maxEvents = DEFAULT_MAX_EVENTS): number {
    let count = 0;
    while (this.heap.length > 0 && this.heap[0].at <= untilMs) {
      const event = this.pop()!;
      if (event.cancelled) continue;
      if (++count > maxEvents) {
        throw new Error(
          `virtual clock: more than ${maxEvents} events before ${untilMs === Infinity ? 'idle' : `t=${untilMs} ms`}; ` +
            `a periodic timer keeps the queue busy — use runFor(ms) instead of run()`,
        );
      }
      this.time = event.at;
      event.run();
    }
    if (untilMs !== Infinity && untilMs > this.time) this.time = untilMs;
    return count;
  }

  /** Runs every event due in the next `durationMs` and advances the clock by exactly that much. */
  runFor(durationMs: number, maxEvents = DEFAULT_MAX_EVENTS): number {
    if (!Number.isFinite(durationMs) || durationMs < 0)
      throw new RangeError(`runFor duration must be a finite number of ms >= 0, got ${durationMs}`);
    return this.run(this.time + durationMs, maxEvents);
  }

  private push(event: QueuedEvent): void {
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i], heap[parent])) break;
      [heap[i], heap[parent]] = [heap[parent], heap[i]];
      i = parent;
    }
  }

  private pop(): QueuedEvent | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let smallest = i;
        if (left < heap.length && before(heap[left], heap[smallest])) smallest = left;
        if (right < heap.length && before(heap[right], heap[smallest])) smallest = right;
        if (smallest === i) break;
        [heap[i], heap[smallest]] = [heap[smallest], heap[i]];
        i = smallest;
      }
    }
    return top;
  }
}

function before(a: QueuedEvent, b: QueuedEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
