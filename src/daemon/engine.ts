// The daemon's view of its engine: the engine as the role uses it, plus a record of every SA the role
// installs (id, direction, layer, peer, outer addresses: never key bytes) for status, metrics and
// logs. The engine itself keeps no such list; the record is the only copy outside the role.
import type {
  BatchLike,
  Engine,
  KeyedSuccessor,
  Policy,
  Route,
  SaDesc,
  SaStats,
  SuccessorConfig,
} from '../engine/types.js';
import { formatName } from '../keys/names.js';
import { ipToU32 } from '../wire/addr.js';
import { decodeSkipHeader, NSID_IPV4, NSID_NONE } from '../wire/skip.js';
import type { ReplayMarks } from './replay-marks.js';

export interface SaRecord {
  id: number;
  direction: SaDesc['direction'];
  role: SaDesc['role'];
  mode: SaDesc['mode'];
  /** The SKIP name of the other end (sgw:<outer address> or smn:<home address>); the outer address in SPI mode. */
  peer: string;
  src: string;
  dst: string;
  /** Unix ms when it was installed. */
  installedAt: number;
}

export interface TableSizes {
  sas: number;
  routes: number;
  policies: number;
}

export interface SaEvents {
  installed(sa: SaRecord): void;
  retired(sa: SaRecord): void;
}

/** Wraps `engine`; every other call passes straight through. */
export class TrackedEngine implements Engine {
  private readonly sas = new Map<number, SaRecord>();
  private routes = 0;
  private policies = 0;

  /** With `marks`, inbound SKIP SAs start above their key tuple's persisted high-water mark (./replay-marks.ts). */
  constructor(
    private readonly inner: Engine,
    private readonly events: SaEvents,
    private readonly now: () => number = Date.now,
    private readonly marks?: ReplayMarks,
  ) {}

  get impl() {
    return this.inner.impl;
  }

  installSa(sa: SaDesc): void {
    this.inner.installSa(this.marks?.floored(sa) ?? sa);
    const record = saRecord(sa, this.now());
    this.sas.set(sa.id, record);
    this.events.installed(record);
  }

  removeSa(id: number): void {
    this.marks?.retire(id, this.inner.saStats(id));
    this.inner.removeSa(id);
    const record = this.sas.get(id);
    if (!record) return;
    this.sas.delete(id);
    this.events.retired(record);
  }

  /** The SAs installed now, by id. */
  list(): SaRecord[] {
    return [...this.sas.values()].sort((a, b) => a.id - b.id);
  }

  /** How many SAs, routes and outbound policies the engine holds now. */
  tableSizes(): TableSizes {
    return { sas: this.sas.size, routes: this.routes, policies: this.policies };
  }

  /** With replay marks, the tuples marked before this process started are not keyed by the engine (their floors). */
  setSuccessors(config: SuccessorConfig): void {
    this.inner.setSuccessors(this.marks ? { ...config, blocked: this.marks.restoredKeys() } : config);
  }

  /** The SAs the engine keyed, recorded (and their marks sampled) like those installed. */
  takeSuccessors(): KeyedSuccessor[] {
    const keyed = this.inner.takeSuccessors();
    for (const k of keyed) {
      const record: SaRecord = {
        id: k.id,
        direction: 'in',
        role: k.role,
        mode: 'skip',
        peer: formatName({ nsid: NSID_NONE, address: ipToU32(k.src) }),
        src: k.src,
        dst: k.dst,
        installedAt: this.now(),
      };
      this.marks?.track(k.id, k.src, k.skipHeader, k.role === 'end' ? 'espSeq' : 'ahSeq');
      this.sas.set(k.id, record);
      this.events.installed(record);
    }
    return keyed;
  }

  setRoutes(routes: readonly Route[]): void {
    this.inner.setRoutes(routes);
    this.routes = routes.length;
  }
  setPolicies(policies: readonly Policy[]): void {
    this.inner.setPolicies(policies);
    this.policies = policies.length;
  }
  setLocalAddresses(addresses: readonly string[]): void {
    this.inner.setLocalAddresses(addresses);
  }
  process(batch: BatchLike): void {
    this.inner.process(batch);
  }
  processAsync(batch: BatchLike): Promise<void> {
    return this.inner.processAsync(batch);
  }
  counters(): BigUint64Array {
    return this.inner.counters();
  }
  saStats(id: number): SaStats | undefined {
    return this.inner.saStats(id);
  }
  /** Frees every SA in the engine (keys zeroed there). */
  close(): void {
    this.sas.clear();
    this.inner.close();
  }
}

/** What status shows of an SA (no key bytes). */
export function saRecord(sa: SaDesc, installedAt: number): SaRecord {
  return {
    id: sa.id,
    direction: sa.direction,
    role: sa.role,
    mode: sa.mode,
    peer: peerOf(sa),
    src: sa.src,
    dst: sa.dst,
    installedAt,
  };
}

/** Who is at the other end of an SA: the SKIP name its header carries, else the outer address. */
function peerOf(sa: SaDesc): string {
  const outer = sa.direction === 'out' ? sa.dst : sa.src;
  if (sa.mode !== 'skip' || !sa.skipHeader) return outer;
  const parsed = decodeSkipHeader(sa.skipHeader, 0);
  if (!parsed.ok) return outer;
  const h = parsed.header;
  const [nsid, mkid] = sa.direction === 'out' ? [h.dstNsid, h.dstMkid] : [h.srcNsid, h.srcMkid];
  if (nsid === NSID_IPV4 && mkid !== undefined) return formatName({ nsid: NSID_IPV4, address: mkid });
  return formatName({ nsid: NSID_NONE, address: ipToU32(outer) });
}
