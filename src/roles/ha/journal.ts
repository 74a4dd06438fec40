// The home agent's durable binding state (RFC 5944 §5.7 replay state included): one journal line per
// accepted registration (../common/journal.ts), on disk before the reply leaves.
import { KeyedJournal, type JournalCodec, type JournalLoad } from '../common/journal.js';

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

const bindingCodec: JournalCodec<BindingRecord> = {
  key: (r) => r.homeAddress,
  encode: (r) => r,
  decode(body) {
    const r = body as BindingRecord;
    const okBinding =
      r.binding === undefined ||
      (typeof r.binding.careOf === 'string' &&
        Number.isInteger(r.binding.lifetime) &&
        Number.isFinite(r.binding.registeredAt));
    return typeof r.homeAddress === 'string' && /^\d+$/.test(r.lastAcceptedId) && okBinding ? r : undefined;
  },
};

export class BindingJournal implements BindingStore {
  private readonly journal: KeyedJournal<BindingRecord>;
  /** What the last load() found; the HA logs it. */
  lastLoad: JournalLoad<BindingRecord> = { records: [], discardedLines: 0 };

  constructor(readonly file: string) {
    this.journal = new KeyedJournal(file, bindingCodec);
  }

  /** Reads the journal (creating it and its directory, 0700, if missing) and cuts off a torn tail. */
  load(): BindingRecord[] {
    this.lastLoad = this.journal.load();
    return this.lastLoad.records;
  }

  write(record: BindingRecord): void {
    this.journal.write([record]);
  }

  /** Rewrites the journal as one line per mobile node. */
  compact(): void {
    this.journal.compact();
  }

  close(): void {
    this.journal.close();
  }
}
