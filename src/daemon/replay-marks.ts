// Replay high-water marks that outlive the daemon (issue 10 hole 13). A restart makes new inbound SAs with empty
// anti-replay windows for key tuples that are still valid (n ± 1 h), so packets captured before it would be accepted
// again. Per inbound SKIP key tuple (a hash of the outer source and the SKIP header: peer MKID, n, wrapped Kp) the
// highest authenticated sequence number goes to a journal in the state directory (<node>/replay-marks.journal,
// ../roles/common/journal.ts): every second the marks that moved since the last write, and each SA's exact mark when
// it goes; a re-installed SA starts its window above it (SaDesc.replayFloor). A periodic write also records a margin,
// twice what the SA advanced in the last interval, for what a SIGKILL could lose since that write; a graceful stop
// writes exact marks. Appending only what moved keeps the cost of a second flat however many keys the hours hold.
import { digest52, nodeSha256, type Sha256 } from '../keys/digest52.js';
import { join } from 'node:path';
import type { SaDesc, SaStats } from '../engine/types.js';
import { KeyedJournal, type JournalCodec } from '../roles/common/journal.js';

const MAX_SEQ = 0xffffffff;
/** A key tuple is valid for n ± 1 h: a mark not seen for longer than this cannot be used again. */
const KEEP_MS = 3 * 3600_000;
/** Bounds the marks like the engine bounds its SAs. */
const MAX_MARKS = 65_536;
/** How often marks past KEEP_MS (or over MAX_MARKS) are looked for. */
const PRUNE_EVERY_MS = 60_000;
/**
 * A key tuple's mark is keyed by 52 bits of its SHA-256, a number in memory and 13 hex digits in the journal (a line
 * written before names it by 32, the first 13 of which are the same bits). A 32-digit string per mark, beside a second
 * map of them in the journal, held ~170 bytes per key in a soaking SGW's heap (~3 new keys a second, kept 3 h). Two
 * tuples that share a digest (~5·10^-7 with 65,536 marks) share a mark: the higher floor only has the other key's
 * sender move to a fresh Kp after a restart.
 */
const KEY_DIGITS = 13;

interface Mark {
  key: number;
  seq: number;
  margin: number;
  seenMs: number;
}

interface Live {
  key: number;
  header: 'espSeq' | 'ahSeq';
}

/** A journal line's body: [key, seq, margin, seenMs]. */
const markCodec: JournalCodec<Mark, number> = {
  key: (m) => m.key,
  encode: (m) => [m.key.toString(16).padStart(KEY_DIGITS, '0'), m.seq, m.margin, m.seenMs],
  decode(body) {
    if (!Array.isArray(body) || body.length !== 4) return undefined;
    const [key, seq, margin, seenMs] = body as unknown[];
    if (typeof key !== 'string' || !/^[0-9a-f]{13}(?:[0-9a-f]{19})?$/.test(key)) return undefined;
    if (!isCount(seq, MAX_SEQ) || !isCount(margin, MAX_SEQ) || !isCount(seenMs, Number.MAX_SAFE_INTEGER))
      return undefined;
    return { key: parseInt(key.slice(0, KEY_DIGITS), 16), seq, margin, seenMs };
  },
};

/** The mark key of an inbound SKIP SA's key tuple (its outer source and SKIP header). */
function markKey(src: string, skipHeader: Uint8Array, sha256: Sha256): number {
  return digest52(Buffer.concat([Buffer.from(src), skipHeader]), sha256);
}

function isCount(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
}

export class ReplayMarks {
  private readonly journal: KeyedJournal<Mark, number>;
  /** By key, least recently recorded first; the journal's live records too (held once). */
  private readonly marks = new Map<number, Mark>();
  private readonly live = new Map<number, Live>();
  /** Recorded since the last write. */
  private readonly moved = new Map<number, Mark>();
  /** The keys loaded at start (restoredKeys). */
  private readonly restored: number[];
  private lastPrune: number;

  /**
   * Loads `dir`/<node>/replay-marks.journal (missing: none yet); `problem` says what of it could not be read (lines
   * that do not check are cut off: a write torn by a crash, covered by the margin of the line before).
   */
  constructor(
    dir: string,
    node: string,
    private readonly now: () => number,
    problem: (message: string) => void,
    /** For the mark keys (digest52); the daemon passes the addon's. */
    private readonly sha256: Sha256 = nodeSha256,
  ) {
    this.journal = new KeyedJournal(join(dir, node, 'replay-marks.journal'), markCodec, this.marks);
    const loaded = this.journal.load();
    if (loaded.discardedLines > 0)
      problem(`${this.journal.file}: ${loaded.discardedLines} line(s) at its end did not check and were cut off`);
    this.marks.clear();
    for (const m of loaded.records.sort((a, b) => a.seenMs - b.seenMs)) this.marks.set(m.key, m);
    this.restored = [...this.marks.keys()];
    this.lastPrune = now();
  }

  /** `sa` with the floor its key tuple reached before (inbound SKIP SAs); remembers it for sampling. */
  floored(sa: SaDesc): SaDesc {
    if (sa.direction !== 'in' || sa.mode !== 'skip' || !sa.skipHeader) return sa;
    const key = this.track(sa.id, sa.src, sa.skipHeader, sa.esp ? 'espSeq' : 'ahSeq');
    const mark = this.marks.get(key);
    return mark ? { ...sa, replayFloor: Math.min(MAX_SEQ, mark.seq + mark.margin) } : sa;
  }

  /** Samples inbound SKIP SA `id` (outer source `src`, its SKIP header) from now on; returns its mark key. */
  track(id: number, src: string, skipHeader: Uint8Array, header: Live['header']): number {
    const key = markKey(src, skipHeader, this.sha256);
    this.live.set(id, { key, header });
    return key;
  }

  /**
   * The mark keys read from the journal at start that are still kept: tuples a previous process held, whose floors
   * only the control plane applies (the engine keys no successor with one of them).
   */
  restoredKeys(): number[] {
    return this.restored.filter((key) => this.marks.has(key));
  }

  /** Before the SA is removed: its exact mark (nothing more can arrive on it), written with the next sample. */
  retire(id: number, stats: SaStats | undefined): void {
    const live = this.live.get(id);
    if (!live) return;
    this.live.delete(id);
    if (stats) this.record(live.key, stats[live.header], false);
  }

  /** Every interval: the live SAs' marks with a SIGKILL margin; what moved is written out. */
  sample(stats: (id: number) => SaStats | undefined): void {
    for (const [id, live] of this.live) {
      const s = stats(id);
      if (s) this.record(live.key, s[live.header], true);
    }
    this.prune();
    this.save();
  }

  /** At stop: exact marks for what is still live, written out. */
  close(stats: (id: number) => SaStats | undefined): void {
    for (const id of [...this.live.keys()]) this.retire(id, stats(id));
    this.save();
    this.journal.close();
  }

  private record(key: number, seq: number, withMargin: boolean): void {
    const before = this.marks.get(key);
    const top = Math.max(seq, before?.seq ?? 0);
    const margin = withMargin ? 2 * (top - (before?.seq ?? top)) : 0;
    if (before && before.seq === top && before.margin === margin) return;
    const mark = { key, seq: top, margin, seenMs: this.now() };
    this.marks.delete(key);
    this.marks.set(key, mark);
    this.moved.set(key, mark);
  }

  /** Forgets marks older than KEEP_MS, and the oldest over MAX_MARKS; a live SA's mark stays. */
  private prune(): void {
    const now = this.now();
    if (now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    const liveKeys = new Set([...this.live.values()].map((l) => l.key));
    let over = this.marks.size - MAX_MARKS;
    for (const [key, m] of this.marks) {
      if (m.seenMs >= now - KEEP_MS && over <= 0) break;
      if (liveKeys.has(key)) continue;
      this.marks.delete(key);
      this.moved.delete(key);
      this.journal.forget(key);
      over--;
    }
  }

  private save(): void {
    if (this.moved.size === 0) return;
    const marks = [...this.moved.values()];
    this.moved.clear();
    this.journal.write(marks);
  }
}
