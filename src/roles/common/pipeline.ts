// One engine call per clock tick (DESIGN §5): roles collect packets in their host hooks and flush
// them together with a 0 ms timer; follow-up ops (WRAP after ENCAP, re-injection after an SA
// install) run as later stages of the same flush.
import {
  Batch,
  Verdict,
  Reason,
  type Engine,
  type OpCode,
  type ReasonCode,
  type VerdictCode,
} from '../../engine/index.js';
import type { Clock, Timer } from '../../net/types.js';

export interface EngineJob<T> {
  op: OpCode;
  packet: Uint8Array;
  arg0?: number;
  arg1?: number;
  /** What the role needs to know to act on the outcome. */
  tag: T;
}

export interface EngineOutcome<T> {
  verdict: VerdictCode;
  reason: ReasonCode;
  sa: number;
  /** A copy: safe to keep after the batch is reused. */
  packet: Uint8Array;
  tag: T;
}

/** Stages one flush may run before the rest waits for the next tick (a bound on SA churn loops). */
const MAX_STAGES = 8;

export class TickPipeline<T> {
  private readonly batch: Batch;
  private queued: EngineJob<T>[] = [];
  private scheduled: Timer | undefined;
  private closed = false;

  constructor(
    private readonly clock: Clock,
    private readonly engine: Engine,
    /** Handles one stage's outcomes; returns follow-up jobs for the next stage. */
    private readonly handle: (outcomes: EngineOutcome<T>[]) => EngineJob<T>[],
    /** Runs before each flush (e.g. routes and SAs refreshed for a new SKIP counter). */
    private readonly beforeFlush: () => void = () => {},
    capacity = 64,
  ) {
    this.batch = new Batch({ capacity, slotSize: 4096, headroom: 512 });
  }

  push(job: EngineJob<T>): void {
    if (this.closed) return;
    this.queued.push(job);
    this.scheduled ??= this.clock.setTimer(0, () => this.flush());
  }

  /**
   * The role is stopping: queued jobs are dropped and the pending flush cancelled, so nothing runs
   * on an engine that closes next (a daemon stopped under traffic would otherwise throw from it).
   */
  close(): void {
    this.closed = true;
    this.scheduled?.cancel();
    this.scheduled = undefined;
    this.queued = [];
  }

  /**
   * Runs `jobs` and their follow-ups now, not on the next tick and without beforeFlush: for what the first punt of a
   * new key leads to (its packet, whose SA just went in), which met the tables the loop runs now and waits for
   * nothing else queued. What is queued stays for its flush.
   */
  runNow(jobs: EngineJob<T>[]): void {
    if (!this.closed) this.stages(jobs);
  }

  private flush(): void {
    this.scheduled = undefined;
    this.beforeFlush();
    const jobs = this.queued;
    this.queued = [];
    this.stages(jobs);
  }

  private stages(first: EngineJob<T>[]): void {
    let jobs = first;
    for (let stage = 0; jobs.length > 0; stage++) {
      if (stage === MAX_STAGES) {
        for (const job of jobs) this.push(job);
        return;
      }
      jobs = this.handle(this.run(jobs));
    }
  }

  /** Runs jobs in chunks of the batch capacity; a packet too big for a slot is dropped with no_room. */
  private run(jobs: EngineJob<T>[]): EngineOutcome<T>[] {
    const outcomes: EngineOutcome<T>[] = [];
    const room = this.batch.slotSize - this.batch.headroom;
    for (let start = 0; start < jobs.length; start += this.batch.capacity) {
      const chunk = jobs.slice(start, start + this.batch.capacity);
      this.batch.clear();
      const index: number[] = [];
      for (const job of chunk)
        index.push(job.packet.length > room ? -1 : this.batch.push(job.op, job.packet, job.arg0, job.arg1));
      this.engine.process(this.batch);
      chunk.forEach((job, k) => {
        if (index[k] < 0) {
          outcomes.push({ verdict: Verdict.DROP, reason: Reason.no_room, sa: 0, packet: job.packet, tag: job.tag });
          return;
        }
        const r = this.batch.result(index[k]);
        outcomes.push({ verdict: r.verdict, reason: r.reason, sa: r.sa, packet: r.packet.slice(), tag: job.tag });
      });
    }
    return outcomes;
  }
}
