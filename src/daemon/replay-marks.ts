// Replay high-water marks that outlive the daemon (issue 10 hole 13). A restart makes new inbound SAs with empty
// anti-replay windows for key tuples that are still valid (n ± 1 h), so packets captured before it would be accepted
// again. Per inbound SKIP key tuple (a hash of the outer source and the SKIP header: peer MKID, n, wrapped Kp) the
// highest authenticated sequence number is written to the state directory (<node>/replay-marks.json) every second and
// when the SA goes; a re-installed SA starts its window above it (SaDesc.replayFloor). A periodic write also records a
// margin, twice what the SA advanced in the last interval, for what a SIGKILL could lose since that write; a graceful
// stop writes exact marks.
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { SaDesc, SaStats } from '../engine/types.js';

const MAX_SEQ = 0xffffffff;
/** A key tuple is valid for n ± 1 h: a mark not seen for longer than this cannot be used again. */
const KEEP_MS = 3 * 3600_000;
/** Bounds the file like the engine bounds its SAs. */
const MAX_MARKS = 65_536;

interface Mark {
  seq: number;
  margin: number;
  seenMs: number;
}

interface Live {
  key: string;
  header: 'espSeq' | 'ahSeq';
}

/** The file's content: { version: 1, marks: { <key>: [seq, margin, seenMs] } }; malformed entries are skipped. */
function parseMarks(text: string): Map<string, Mark> {
  const parsed = JSON.parse(text) as { version?: unknown; marks?: unknown };
  const valid = parsed.version === 1 && typeof parsed.marks === 'object' && parsed.marks !== null;
  if (!valid) throw new Error('not a version 1 replay-marks file');
  const marks = new Map<string, Mark>();
  for (const [key, value] of Object.entries(parsed.marks as object)) {
    if (!/^[0-9a-f]{32}$/.test(key) || !Array.isArray(value) || value.length !== 3) continue;
    const [seq, margin, seenMs] = value as unknown[];
    if (!isCount(seq, MAX_SEQ) || !isCount(margin, MAX_SEQ) || !isCount(seenMs, Number.MAX_SAFE_INTEGER)) continue;
    marks.set(key, { seq, margin, seenMs });
  }
  return marks;
}

function isCount(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
}

/** Temp file, fsync, rename: a crash leaves the old file or the new one, never half of one. */
function writeAtomically(path: string, text: string): void {
  const temp = `${path}.${process.pid}.tmp`;
  const fd = openSync(temp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
}

export class ReplayMarks {
  private readonly path: string;
  private readonly marks: Map<string, Mark>;
  private readonly live = new Map<number, Live>();

  /** Loads `dir`/<node>/replay-marks.json (missing: none yet); `problem` says why an unreadable file was ignored. */
  constructor(
    dir: string,
    node: string,
    private readonly now: () => number,
    private readonly problem: (message: string) => void,
  ) {
    mkdirSync(join(dir, node), { recursive: true, mode: 0o700 });
    this.path = join(dir, node, 'replay-marks.json');
    this.marks = this.load();
  }

  /** `sa` with the floor its key tuple reached before (inbound SKIP SAs); remembers it for sampling. */
  floored(sa: SaDesc): SaDesc {
    if (sa.direction !== 'in' || sa.mode !== 'skip' || !sa.skipHeader) return sa;
    const key = createHash('sha256').update(sa.src).update(sa.skipHeader).digest('hex').slice(0, 32);
    this.live.set(sa.id, { key, header: sa.esp ? 'espSeq' : 'ahSeq' });
    const mark = this.marks.get(key);
    return mark ? { ...sa, replayFloor: Math.min(MAX_SEQ, mark.seq + mark.margin) } : sa;
  }

  /** Before the SA is removed: its exact mark (nothing more can arrive on it). */
  retire(id: number, stats: SaStats | undefined): void {
    const live = this.live.get(id);
    if (!live) return;
    this.live.delete(id);
    if (stats) this.record(live.key, stats[live.header], false);
  }

  /** Every interval: the live SAs' marks with a SIGKILL margin, written out. */
  sample(stats: (id: number) => SaStats | undefined): void {
    for (const [id, live] of this.live) {
      const s = stats(id);
      if (s) this.record(live.key, s[live.header], true);
    }
    this.save();
  }

  /** At stop: exact marks for what is still live, written out. */
  close(stats: (id: number) => SaStats | undefined): void {
    for (const id of [...this.live.keys()]) this.retire(id, stats(id));
    this.save();
  }

  private record(key: string, seq: number, withMargin: boolean): void {
    const before = this.marks.get(key);
    const top = Math.max(seq, before?.seq ?? 0);
    const margin = withMargin ? 2 * (top - (before?.seq ?? top)) : 0;
    this.marks.set(key, { seq: top, margin, seenMs: this.now() });
  }

  private save(): void {
    const cutoff = this.now() - KEEP_MS;
    const kept = [...this.marks]
      .filter(([, m]) => m.seenMs >= cutoff)
      .sort((a, b) => b[1].seenMs - a[1].seenMs)
      .slice(0, MAX_MARKS);
    this.marks.clear();
    for (const [key, m] of kept) this.marks.set(key, m);
    const marks = Object.fromEntries(kept.map(([key, m]) => [key, [m.seq, m.margin, m.seenMs]]));
    writeAtomically(this.path, `${JSON.stringify({ version: 1, marks })}\n`);
  }

  private load(): Map<string, Mark> {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw err;
    }
    try {
      return parseMarks(text);
    } catch (err) {
      const why = `${this.path}: ${(err as Error).message}`;
      this.problem(`${why}; starting without replay marks (packets from before the restart may be accepted once)`);
      return new Map();
    }
  }
}
