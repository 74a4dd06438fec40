// Durable keyed records (the HA's bindings, an SGW's replay marks): an append-only journal, one checksummed
// JSON line per record written, fdatasync'd before write() returns, and compacted by writing the live records
// beside it and renaming that over the journal (atomic on POSIX file systems).
//
// Why a journal and not SQLite: the records are small and written a few at a time; a journal needs no second
// native dependency (better-sqlite3 pins Node versions), costs one append per change instead of a rewrite of
// everything, and its crash behaviour is ours to read and test: a torn last line is detected by its checksum and
// cut off, every earlier line was fsync'd before write() returned.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** How a record kind lives in a journal: its key (a later line with the same key replaces it) and its JSON body. */
export interface JournalCodec<R, K = string> {
  key(record: R): K;
  /** The record as a JSON-able value. */
  encode(record: R): unknown;
  /** A parsed body back to a record; undefined when it is not a well-formed one. */
  decode(body: unknown): R | undefined;
}

export interface JournalLoad<R> {
  records: R[];
  /** Lines cut off the end because they did not check (a write torn by a crash). */
  discardedLines: number;
}

/** Lines appended before a compaction is considered: a journal at most this many times its live records. */
const COMPACT_MIN_LINES = 1024;
const COMPACT_FACTOR = 4;

export class KeyedJournal<R, K = string> {
  private fd: number | undefined;
  private lines = 0;

  /**
   * `live`: the map the live records are kept in, by key. A caller that holds them by the same key passes its own map,
   * so each record is held once (load() fills it; write() sets what it wrote; a compaction writes what it holds).
   */
  constructor(
    readonly file: string,
    private readonly codec: JournalCodec<R, K>,
    private readonly live = new Map<K, R>(),
  ) {}

  /** Reads the journal (creating it and its directory, 0700, if missing) and cuts off a torn tail. */
  load(): JournalLoad<R> {
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const text = fs.existsSync(this.file) ? fs.readFileSync(this.file, 'utf8') : '';
    let good = 0;
    let discarded = 0;
    this.live.clear();
    this.lines = 0;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const record = discarded === 0 ? this.decodeLine(line) : undefined;
      if (!record) {
        discarded++;
        continue;
      }
      good += Buffer.byteLength(line, 'utf8') + 1;
      this.live.set(this.codec.key(record), record);
      this.lines++;
    }
    this.fd = fs.openSync(this.file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_APPEND, 0o600);
    if (discarded > 0) {
      fs.ftruncateSync(this.fd, good);
      fs.fsyncSync(this.fd);
    }
    return { records: [...this.live.values()], discardedLines: discarded };
  }

  /** Appends `records` in one write and returns once they are on disk. */
  write(records: readonly R[]): void {
    if (this.fd === undefined) throw new Error(`journal ${this.file} is not open: call load() first`);
    if (records.length === 0) return;
    fs.writeSync(this.fd, records.map((r) => this.encodeLine(r)).join(''));
    fs.fdatasyncSync(this.fd);
    for (const r of records) this.live.set(this.codec.key(r), r);
    this.lines += records.length;
    if (this.lines >= Math.max(COMPACT_MIN_LINES, COMPACT_FACTOR * this.live.size)) this.compact();
  }

  /** Drops the record under `key` from the live set: gone from the file at the next compaction. */
  forget(key: K): void {
    this.live.delete(key);
  }

  /** Rewrites the journal as one line per live record: temp file, fsync, rename, fsync of the directory. */
  compact(): void {
    const temp = `${this.file}.tmp`;
    const fd = fs.openSync(temp, 'w', 0o600);
    try {
      fs.writeSync(fd, [...this.live.values()].map((r) => this.encodeLine(r)).join(''));
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

  private encodeLine(record: R): string {
    const body = JSON.stringify(this.codec.encode(record));
    return `${checksum(body)} ${body}\n`;
  }

  /** A line that does not check, or does not hold a well-formed record, is undefined. */
  private decodeLine(line: string): R | undefined {
    const space = line.indexOf(' ');
    if (space !== 16) return undefined;
    const body = line.slice(space + 1);
    if (checksum(body) !== line.slice(0, space)) return undefined;
    try {
      return this.codec.decode(JSON.parse(body));
    } catch {
      return undefined;
    }
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
