// An SGW's manually keyed SPI-mode SAs (config `manualSas`) at work on a Host, on an engine of their
// own (their SA ids, policies and routes do not mix with the SKIP tables): datagrams from inside to a
// remote prefix are sealed (OUTBOUND), ESP to the outside address is opened (INBOUND); everything
// else passes on to the hooks after this one (the SKIP SGW) or is forwarded as usual. When the host's
// I/O loops run this very engine (`dataPath`), the same decisions go into their interface tables, so
// sealing and opening never reach JavaScript; what the tables leave out is punted to the hook below.
import type { ManualKeyPaths, ManualSaEntry } from '../../config/manual-sa.js';
import { manualSaTables } from '../../config/manual-sa.js';
import { createHash } from 'node:crypto';
import { Op, Verdict, reasonName, type Engine, type Policy, type SaDesc } from '../../engine/types.js';
import type { Clock, Host } from '../../net/types.js';
import { TickPipeline } from '../common/pipeline.js';
import type { KeyLog } from '../common/keylog.js';
import { ipToU32, parsePrefix, prefixContains, type Prefix } from '../../wire/addr.js';
import { isFragment } from '../../wire/fragment.js';
import { IpProto } from '../../wire/ipv4.js';
import { Tally } from '../common/counters.js';
import { readableHeader, Reassembler } from '../common/reassembly.js';

export interface ManualSaSetup {
  host: Host;
  clock: Clock;
  /** A fresh engine; the gateway closes it. */
  engine: Engine;
  entries: readonly ManualSaEntry[];
  keys: readonly ManualKeyPaths[];
  inside: { name: string; address: string };
  outside: { name: string; address: string };
  keyLog?: KeyLog;
  /**
   * The policy tables of the host's I/O loops (HostDataPath.tableOf) when they run `engine`: inside gets each
   * entry's protect policy, outside an `inbound` one for the outside address. Absent: only engine.process is fed.
   */
  dataPath?: { inside: number; outside: number };
}

/** An entry's inbound SA after a failed reload took it away. */
const NO_SA = 0;

/** One installed entry: its SA ids and what decides whether a reload may keep them. */
interface InstalledEntry {
  name: string;
  out: number;
  in: number;
  spiIn: number;
  /** Name, peer, prefixes, suite, SPIs and a SHA-256 of both keys: equal means the same SAs. */
  fingerprint: string;
}

export class ManualSpiGateway {
  private readonly pipeline: TickPipeline<'out' | 'in'>;
  private readonly removeHook: () => void;
  private readonly engine: Engine;
  private readonly outside: string;
  private readonly keyLog?: KeyLog;
  private installed: InstalledEntry[] = [];
  /** Remote prefixes whose datagrams from inside are sealed; replaced with the entries. */
  private remotes: Prefix[] = [];
  private nextId = 1;
  readonly drops = new Map<string, number>();
  /** Unreadable packets and fragment reassembly. */
  private readonly tally = new Tally();
  private readonly fragments: Reassembler;
  private readonly dataPath?: { inside: number; outside: number };

  constructor(s: ManualSaSetup) {
    this.engine = s.engine;
    this.outside = s.outside.address;
    this.keyLog = s.keyLog;
    this.dataPath = s.dataPath;
    try {
      s.engine.setLocalAddresses([s.inside.address, s.outside.address]);
      this.replace(s.entries, s.keys);
    } catch (err) {
      s.engine.close();
      throw err;
    }
    const outsideU32 = ipToU32(s.outside.address);
    this.pipeline = new TickPipeline(s.clock, s.engine, (outcomes) => {
      for (const o of outcomes) {
        if (o.verdict === Verdict.FORWARD || o.verdict === Verdict.DELIVER)
          s.host.send(o.packet, { bypassHooks: true });
        else this.drops.set(reasonName[o.reason], (this.drops.get(reasonName[o.reason]) ?? 0) + 1);
      }
      return [];
    });
    this.fragments = new Reassembler(s.clock, this.tally);
    this.removeHook = s.host.addHook('input', (packet, ctx) => {
      // Nothing unreadable passes; a fragment is judged whole (it could be for a remote prefix).
      const header = readableHeader(packet, this.tally);
      if (!header) return 'consumed';
      if (isFragment(header)) {
        this.fragments.reinject(s.host, packet, header, ctx.iface);
        return 'consumed';
      }
      const { dst, protocol } = header;
      if (ctx.iface === s.inside.name && this.remotes.some((p) => prefixContains(p, dst)))
        this.pipeline.push({ op: Op.OUTBOUND, packet: packet.slice(), tag: 'out' });
      else if (ctx.iface === s.outside.name && protocol === IpProto.ESP && dst === outsideU32)
        this.pipeline.push({ op: Op.INBOUND, packet: packet.slice(), tag: 'in' });
      else return 'pass';
      return 'consumed';
    });
  }

  /**
   * Puts `entries` in force (start, and a daemon reload): an entry whose name, peer, prefixes, suite,
   * SPIs and keys are unchanged keeps its installed SAs (same ids, no packet lost); the others get new
   * SAs, installed before the policies switch to them; SAs no entry uses any more are removed last.
   * Returns the names of the entries whose SAs were installed and of those removed.
   */
  replace(
    entries: readonly ManualSaEntry[],
    keys: readonly ManualKeyPaths[],
  ): { installed: string[]; removed: string[] } {
    const tables = manualSaTables(entries, keys, this.outside);
    const next: InstalledEntry[] = [];
    const fresh: SaDesc[] = [];
    const ids = new Map<number, number>();
    const added: string[] = [];
    const freed = new Set<InstalledEntry>();
    try {
      entries.forEach((entry, i) => {
        const [out, inbound] = [tables.sas[2 * i], tables.sas[2 * i + 1]];
        const keyDigest = createHash('sha256').update(out.esp!.key).update(inbound.esp!.key).digest('hex');
        const fingerprint = JSON.stringify([
          entry.name,
          entry.peer,
          entry.local,
          entry.remote,
          entry.suite,
          entry.spiOut,
          entry.spiIn,
          keyDigest,
        ]);
        const kept = this.installed.find((e) => e.fingerprint === fingerprint);
        const installed = kept ?? {
          name: entry.name,
          out: this.nextId++,
          in: this.nextId++,
          spiIn: entry.spiIn,
          fingerprint,
        };
        if (!kept) {
          fresh.push({ ...out, id: installed.out }, { ...inbound, id: installed.in });
          added.push(entry.name);
        }
        ids.set(out.id, installed.out);
        next.push(installed);
      });
      // The engine refuses a second inbound SA with the same SPI: an entry that changes its key but not
      // its spiIn gives up the old inbound SA just before the new one goes in.
      for (const old of this.installed) {
        if (!next.includes(old) && entries.some((e) => e.spiIn === old.spiIn)) {
          this.engine.removeSa(old.in);
          freed.add(old);
        }
      }
      const done: number[] = [];
      try {
        for (const sa of fresh) {
          this.keyLog?.record(sa);
          this.engine.installSa(sa);
          done.push(sa.id);
        }
      } catch (err) {
        // The new SAs go again; the entries in force and the policies stay as they were (those that
        // gave up their inbound SA keep sending, and receive again once a reload succeeds).
        for (const id of done) this.engine.removeSa(id);
        for (const old of freed) old.in = NO_SA;
        throw err;
      }
    } finally {
      for (const sa of tables.sas) sa.esp!.key.fill(0);
    }
    this.engine.setPolicies(this.compiled(tables.policies.map((p) => ({ ...p, sa: ids.get(p.sa)! }))));
    this.engine.setRoutes(tables.routes);
    this.remotes = entries.map((e) => parsePrefix(e.remote));
    const gone = this.installed.filter((e) => !next.includes(e));
    for (const e of gone) {
      this.engine.removeSa(e.out);
      if (!freed.has(e) && e.in !== NO_SA) this.engine.removeSa(e.in);
    }
    this.installed = next;
    return { installed: added, removed: gone.map((e) => e.name) };
  }

  /**
   * `policies` (table 0, engine.process) and, for the I/O loops, the same protect policies in the inside table and
   * the outside address opened by INBOUND in the outside table: the decisions the hook makes, and no others.
   */
  private compiled(policies: Policy[]): Policy[] {
    if (!this.dataPath) return policies;
    const { inside, outside } = this.dataPath;
    const opened: Policy = { table: outside, prefix: `${this.outside}/32`, sa: 0, action: 'inbound' };
    return [...policies, ...policies.map((p) => ({ ...p, table: inside })), opened];
  }

  /** The entries in force, by name, with their SA ids in this gateway's engine. */
  entries(): { name: string; out: number; in: number }[] {
    return this.installed.map(({ name, out, in: inbound }) => ({ name, out, in: inbound }));
  }

  /** Drops by engine reason, unreadable packets and fragment reassembly, as role counters. */
  counters(): Record<string, number> {
    const own = Object.entries(this.tally.snapshot()).map(([name, n]): [string, number] => [`manual_${name}`, n]);
    return Object.fromEntries([
      ...[...this.drops].map(([reason, n]): [string, number] => [`manual_drop_${reason}`, n]),
      ...own,
    ]);
  }

  /** Removes the hook, then frees the SAs (the engine zeroes their keys). */
  close(): void {
    this.removeHook();
    this.pipeline.close();
    this.fragments.close();
    this.engine.close();
  }
}
