// The home agent's durable binding state (RFC 5944 §5.7 replay state included): an append-only journal,
// one checksummed line per accepted registration, fsync'd before the reply leaves, and compacted by
// writing a snapshot beside it and renaming it over the journal (atomic on POSIX file systems).
//
// Why a journal and not SQLite: the state is one small record per mobile node, written once per
// registration; a journal needs no second native dependency (better-sqlite3 pins Node versions), and its
// crash behaviour is ours to read and test: a torn last line is detected by its checksum and cut off,
// every earlier line was fsync'd before its reply.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** What the HA must not forget about one mobile node: its binding (if any) and its replay state. */
export interface BindingRecord {
  homeAddress: string;
  /** Absent after a deregistration: no binding, but the identification still counts. */
  binding?: { careOf: string; lifetime: number; registeredAt: number };
  /** Highest identification accepted (RFC 5944 §5.7), as a decimal string (64 bits). */
  lastAcceptedId: string;
}

/** Where the HA keeps BindingRecords; write() returns only once the record is durable. */
export interface BindingStore {
  load(): BindingRecord[];
  write(record: BindingRecord): void;
  close(): void;
}

/** Lines appended before a compaction is considered: a journal at most this many times its live records. */
const COMPACT_MIN_LINES = 1024;
const COMPACT_FACTOR = 4;

export interface JournalLoad {
  records: BindingRecord[];
  /** Lines cut off the end because they did not check (a write torn by a crash). */
  discardedLines: number;
}

export class BindingJournal implements BindingStore {
  private fd: number | undefined;
  private readonly live = new Map<string, BindingRecord>();
  private lines = 0;
  /** What the last load() found; the HA logs it. */
  lastLoad: JournalLoad = { records: [], discardedLines: 0 };

  constructor(readonly file: string) {}

  /** Reads the journal (creating it and its directory, 0700, if missing) and cuts off a torn tail. */
  load(): BindingRecord[] {
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const text = fs.existsSync(this.file) ? fs.readFileSync(this.file, 'utf8') : '';
    let good = 0;
    let discarded = 0;
    this.live.clear();
    this.lines = 0;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const record = discarded === 0 ? decodeLine(line) : undefined;
      if (!record) {
        discarded++;
        continue;
      }
      good += Buffer.byteLength(line, 'utf8') + 1;
      this.live.set(record.homeAddress, record);
      this.lines++;
    }
    this.fd = fs.openSync(this.file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_APPEND, 0o600);
    if (discarded > 0) {
      fs.ftruncateSync(this.fd, good);
      fs.fsyncSync(this.fd);
    }
    this.lastLoad = { records: [...this.live.values()], discardedLines: discarded };
    return this.lastLoad.records;
  }

  write(record: BindingRecord): void {
    if (this.fd === undefined) throw new Error(`binding journal ${this.file} is not open: call load() first`);
    fs.writeSync(this.fd, encodeLine(record));
    fs.fdatasyncSync(this.fd);
    this.live.set(record.homeAddress, record);
    this.lines++;
    if (this.lines >= Math.max(COMPACT_MIN_LINES, COMPACT_FACTOR * this.live.size)) this.compact();
  }

  /** Rewrites the journal as one line per mobile node: temp file, fsync, rename, fsync of the directory. */
  compact(): void {
    const temp = `${this.file}.tmp`;
    const fd = fs.openSync(temp, 'w', 0o600);
    try {
      fs.writeSync(fd, [...this.live.values()].map(encodeLine).join(''));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, this.file);
    syncDirectory(path.dirname(this.file));
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = fs.openSync(this.file, fs.constants.O_RDWR | fs.constants.O_APPEND);
    this.lines = this.live.size;
  }

  close(): void {
    if (this.fd === undefined) return;
    fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

function syncDirectory(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function checksum(body: string): string {
  return createHash('sha256').update(body).digest('hex').slice(0, 16);
}

function encodeLine(record: BindingRecord): string {
  const body = JSON.stringify(record);
  return `${checksum(body)} ${body}\n`;
}

/** A line that does not check, or does not hold a well-formed record, is undefined. */
function decodeLine(line: string): BindingRecord | undefined {
  const space = line.indexOf(' ');
  if (space !== 16) return undefined;
  const body = line.slice(space + 1);
  if (checksum(body) !== line.slice(0, space)) return undefined;
  try {
    const r = JSON.parse(body) as BindingRecord;
    const okBinding =
      r.binding === undefined ||
      (typeof r.binding.careOf === 'string' &&
        Number.isInteger(r.binding.lifetime) &&
        Number.isFinite(r.binding.registeredAt));
    return typeof r.homeAddress === 'string' && /^\d+$/.test(r.lastAcceptedId) && okBinding ? r : undefined;
  } catch {
    return undefined;
  }
}
