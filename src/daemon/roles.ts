// One role built from a loaded node config: the config's settings, the HA's journal and the manual SAs here, the role
// started by src/roles/start.ts (as the lab's are), with one face for the daemon: counters, bindings, a graceful stop,
// reloads and events for the log.
import { join } from 'node:path';
import { createEngine } from '../engine/index.js';
import type { LoadedNode, PolicyKnobs } from '../config/index.js';
import type { CertCache } from '../keys/cache.js';
import type { Identity } from '../keys/keyfile.js';
import type { Clock } from '../net/types.js';
import { BindingJournal } from '../roles/ha/journal.js';
import type { SecurityGateway } from '../roles/sgw/gateway.js';
import { ManualSpiGateway } from '../roles/sgw/manual.js';
import type { MobileNode } from '../roles/smn/mobile-node.js';
import type { Suites } from '../roles/common/suites.js';
import { startRole, type RoleDeps, type SkipDeps } from '../roles/start.js';
import { parseAddressOrPrefix, prefixWithin } from '../topology/map.js';
import { TrackedEngine, type SaRecord } from './engine.js';
import type { LiveChanges, LiveField } from './live-fields.js';
import type { MnHaEntry } from './mnha.js';

export interface HaBindingView {
  homeAddress: string;
  careOf: string;
  lifetimeSeconds: number;
  remainingSeconds: number;
}

export interface SmnMobilityView {
  homeAddress: string;
  registration: string;
  place: string;
  careOf: string;
  site?: string;
  /** Seconds left of the granted registration, when registered. */
  remainingSeconds?: number;
}

/** One manual SA as status shows it: the record the SA tracker keeps, its entry's name and its counters. */
export interface ManualSaView extends SaRecord {
  name: string;
  packets: number;
  bytes: number;
}

/** The policy knobs an SGW's suites are made of (suitesOf). */
const SUITE_FIELDS: readonly LiveField[] = ['policy.esp', 'policy.nextHopMac', 'policy.coverage', 'policy.endEndAh'];

/** A host that reports when the kernel moved an interface to another address (src/net/linux/attached.ts). */
interface AddressFollower {
  followAddress(iface: string, moved: (cidr: string, gateway: string) => void): () => void;
}

export type RoleEvent = { event: string; [field: string]: unknown };

export const DEFAULT_STATE_DIR = '/var/lib/mipsec';

/** A node's role: what it runs on (host, clock, engine), its loaded config and what the daemon read for it. */
export interface RoleSetup extends RoleDeps {
  loaded: LoadedNode;
  identity?: Identity;
  certs?: CertCache;
  mnHaKeys?: MnHaEntry[];
  /** Where durable role state lives (<stateDir>/<node>/…) unless the config names a file; default DEFAULT_STATE_DIR. */
  stateDir?: string;
  onEvent(e: RoleEvent): void;
}

export interface RunningRole {
  /** Role counters by name (decisions, drops by reason, messages sent). */
  counters(): Record<string, number>;
  /** HA: its bindings; SMN: its registration and position; SGW: none. */
  bindings(): HaBindingView[] | SmnMobilityView | undefined;
  /** The config fields this role puts in force on a reload; a change to any other waits for a restart. */
  readonly liveFields: readonly LiveField[];
  /**
   * A reload (called on every one, even with no change: a role may read files again): puts in force what `next`
   * changes inside liveFields (`changes`, against the config in force). Returns what it applied, for the log; throws
   * if the role refused it (nothing of it applied, the old stays).
   */
  reconfigure(next: LoadedNode, changes: LiveChanges): string[];
  /** SGW with manual SPI-mode SAs: their SAs (no keys), on the manual SAs' own engine. */
  manualSas?(): ManualSaView[];
  /** Before close: what the role owes its peers on the way out (the SMN deregisters). */
  leave(waitMs: number): Promise<void>;
  close(): void;
}

/** The daemon's face of an SGW (also used for the lab's kept SGWs). */
export function sgwFace(sgw: SecurityGateway): RunningRole {
  return {
    counters: () => sgw.counters(),
    bindings: () => undefined,
    leave: async () => {},
    close: () => sgw.close(),
    liveFields: [...SUITE_FIELDS, 'policy.plainInbound', 'policy.icmpRateLimit'],
    reconfigure: (next, changes) => {
      const { policy } = next.node;
      sgw.reconfigure({
        suites: SUITE_FIELDS.some((field) => changes.has(field)) ? suitesOf(policy) : undefined,
        plainInbound: changes.has('policy.plainInbound') ? policy.plainInbound : undefined,
        failureRate: changes.has('policy.icmpRateLimit') ? policy.icmpRateLimit : undefined,
      });
      return [...changes.paths];
    },
  };
}

/** The suites a role keys with, from the node's policy knobs. */
export function suitesOf(p: PolicyKnobs): Suites {
  return { esp: p.esp, nextHopAh: p.nextHopMac, coverage: p.coverage, endAh: p.endEndAh ? p.nextHopMac : undefined };
}

export function buildRole(s: RoleSetup): RunningRole {
  const { node } = s.loaded;
  if (node.role === 'sgw') {
    // Manual SAs first: their hook sees the datagrams they own before the SKIP SGW's does.
    const manual = node.manualSas?.length ? buildManualSas(s) : undefined;
    let sgw: SecurityGateway;
    try {
      sgw = startRole({
        role: 'sgw',
        ...skipDeps(s),
        name: node.name,
        insideInterface: node.sgw!.inside,
        suites: suitesOf(node.policy),
        plainInbound: node.policy.plainInbound,
        failureRate: node.policy.icmpRateLimit,
        kpRotationPackets: node.policy.kpRotationPackets,
      });
    } catch (err) {
      manual?.gateway.close();
      throw err;
    }
    const face = sgwFace(sgw);
    if (!manual) return face;
    s.onEvent({
      event: 'manual_sas_installed',
      count: node.manualSas!.length,
      names: node.manualSas!.map((e) => e.name),
    });
    return {
      ...face,
      counters: () => ({ ...face.counters(), ...manual.gateway.counters() }),
      // Only an SGW that started with manual SAs has their hook in front of the SKIP SGW's; one that gains
      // its first needs a restart.
      liveFields: [...face.liveFields, 'manualSas'],
      reconfigure: (next, changes) => {
        // Key files are read again even when no field changed: a new key under the same path counts.
        const { installed, removed } = manual.gateway.replace(next.node.manualSas ?? [], next.paths.manualKeys ?? []);
        const applied = face.reconfigure(next, changes.only(face.liveFields));
        if (installed.length || removed.length) {
          s.onEvent({ event: 'manual_sas_replaced', installed, removed });
          applied.push(
            `manualSas (installed: ${installed.join(', ') || 'none'}; removed: ${removed.join(', ') || 'none'})`,
          );
        }
        return applied;
      },
      manualSas: () => {
        const records = new Map(manual.engine.list().map((r) => [r.id, r]));
        return manual.gateway.entries().flatMap(({ name, out, in: inbound }) =>
          [out, inbound].flatMap((id) => {
            const record = records.get(id);
            const stats = manual.engine.saStats(id);
            return record
              ? [{ ...record, name, packets: Number(stats?.packets ?? 0n), bytes: Number(stats?.bytes ?? 0n) }]
              : [];
          }),
        );
      },
      close: () => {
        const count = manual.gateway.entries().length;
        manual.gateway.close();
        face.close();
        s.onEvent({ event: 'manual_sas_removed', count });
      },
    };
  }
  if (node.role === 'smn') return buildSmn(s);
  return buildHa(s);
}

/** What an SGW or SMN of this node keys with: the setup's host, clock, engine, identity and certificates. */
function skipDeps(s: RoleSetup): SkipDeps {
  return { host: s.host, clock: s.clock, engine: s.engine, map: s.loaded.map, identity: s.identity!, certs: s.certs! };
}

/** The node's manual SPI-mode SAs on an engine of their own (same implementation as the role's), tracked for status. */
function buildManualSas(s: RoleSetup): { gateway: ManualSpiGateway; engine: TrackedEngine } {
  const { node, paths } = s.loaded;
  const side = (which: 'inside' | 'outside') => node.interfaces.find((i) => i.name === node.sgw![which])!;
  const quiet = { installed: () => {}, retired: () => {} };
  const engine = new TrackedEngine(createEngine(s.engine.impl), quiet, () => s.clock.now());
  const gateway = new ManualSpiGateway({
    host: s.host,
    clock: s.clock,
    engine,
    entries: node.manualSas!,
    keys: paths.manualKeys!,
    inside: side('inside'),
    outside: side('outside'),
  });
  return { gateway, engine };
}

function buildSmn(s: RoleSetup): RunningRole {
  const { node } = s.loaded;
  const home = node.smn!.homeAddress;
  const key = s.mnHaKeys?.find((e) => e.homeAddress === home);
  if (!key)
    throw new Error(
      `the MN-HA key file has no line for this SMN's home address ${home}; add '${home} <SPI> <key hex>' (the same ` +
        `line as on its HA)`,
    );
  const smn = startRole({
    role: 'smn',
    ...skipDeps(s),
    interface: node.interfaces[0].name,
    // A copy: the registration client zeroes its key when it stops, the daemon zeroes the file's.
    mnHaKey: { spi: key.auth.spi, key: key.auth.key.slice() },
    knownBorders: node.smn!.borderSgws,
    suites: suitesOf(node.policy),
    kpRotationPackets: node.policy.kpRotationPackets,
  });
  smn.onRegistration(({ type, ...fields }) => s.onEvent({ event: `registration_${type}`, ...fields }));
  // A host on real interfaces tells when the kernel's address of the SMN's interface changed: a handover.
  const follow = (s.host as Partial<AddressFollower>).followAddress?.bind(s.host);
  const iface = node.interfaces[0].name;
  const stopFollowing = follow?.(iface, (cidr, gateway) => {
    s.onEvent({ event: 'handover', interface: iface, address: cidr, gateway });
    smn.moveTo(iface, cidr, gateway);
  });
  const face = smnFace(smn, s.clock);
  return stopFollowing
    ? {
        ...face,
        close: () => {
          stopFollowing();
          face.close();
        },
      }
    : face;
}

/** The daemon's face of an SMN: counters with its registration client's, its position, a deregistering leave(). */
export function smnFace(smn: MobileNode, clock: Clock): RunningRole {
  const home = smn.homeAddress;
  const remaining = (expiresAt: number) => Math.max(0, Math.round((expiresAt - clock.now()) / 1000));
  return {
    counters: () => ({ ...smn.counters(), ...prefixed('registration_', { ...smn.registration.counters() }) }),
    bindings: () => {
      const position = smn.position();
      const reg = smn.registration.registration;
      return {
        homeAddress: home,
        registration: smn.registration.state,
        place: position.place,
        careOf: position.careOf,
        site: position.site,
        remainingSeconds: reg && remaining(reg.expiresAt),
      };
    },
    leave: async (waitMs) => {
      if (smn.position().place === 'home') return;
      // Away: tell the HA we are gone (lifetime 0), and wait a little for its answer.
      const answered = new Promise<void>((done) => {
        const timer = clock.setTimer(waitMs, () => done());
        const off = smn.onRegistration((e) => {
          if (e.type === 'deregistered' || e.type === 'denied' || e.type === 'gave_up') {
            timer.cancel();
            off();
            done();
          }
        });
      });
      smn.registration.returnHome();
      await answered;
    },
    liveFields: ['smn.borderSgws'],
    reconfigure: (next, changes) => {
      if (!changes.has('smn.borderSgws')) return [];
      smn.setKnownBorders(next.node.smn!.borderSgws);
      return ['smn.borderSgws'];
    },
    close: () => smn.close(),
  };
}

function buildHa(s: RoleSetup): RunningRole {
  const { node, map } = s.loaded;
  const ha = map.homeAgent(node.name)!;
  const served = node.ha!.serves.map((text) => parseAddressOrPrefix(text));
  const mobileNodes = (s.mnHaKeys ?? []).filter((e) =>
    served.some((p) => prefixWithin(parseAddressOrPrefix(e.homeAddress), p)),
  );
  if (mobileNodes.length === 0)
    throw new Error(
      `the MN-HA key file has no line for a home address this HA serves (${node.ha!.serves.join(', ')}); ` +
        `add '<home address> <SPI> <key hex>' per mobile node`,
    );
  const homeInterface = node.interfaces.find((i) => i.address === ha.address)!.name;
  const store = new BindingJournal(
    s.loaded.paths.bindings ?? join(s.stateDir ?? DEFAULT_STATE_DIR, node.name, 'bindings.journal'),
  );
  // The daemon's engine builds and opens the RFC 2003 tunnels (IPIP_ENCAP / IPIP_DECAP).
  const agent = startRole({
    role: 'ha',
    host: s.host,
    clock: s.clock,
    engine: s.engine,
    address: ha.address,
    homeInterface,
    mobileNodes,
    store,
  });
  s.onEvent({
    event: 'bindings_restored',
    file: store.file,
    ...agent.restored,
    discardedLines: store.lastLoad.discardedLines,
  });
  agent.on((e) => {
    if (e.type === 'binding')
      s.onEvent({
        event: 'binding',
        homeAddress: e.binding.homeAddress,
        careOf: e.binding.careOf,
        lifetime: e.binding.lifetime,
      });
    else {
      const { type, ...fields } = e;
      s.onEvent({ event: type, ...fields });
    }
  });
  return {
    counters: () => {
      const c = agent.counters();
      const replies = Object.fromEntries(Object.entries(c.replies).map(([code, n]) => [`reply_code${code}`, n]));
      return { ...replies, ...prefixed('drop_', c.drops), tunnelled: c.tunnelled, decapsulated: c.decapsulated };
    },
    bindings: () =>
      agent.bindings().map((b) => ({
        homeAddress: b.homeAddress,
        careOf: b.careOf,
        lifetimeSeconds: b.lifetime,
        remainingSeconds: Math.max(0, Math.round((b.expiresAt - s.clock.now()) / 1000)),
      })),
    leave: async () => {},
    liveFields: [],
    reconfigure: () => [],
    close: () => agent.close(),
  };
}

function prefixed(prefix: string, counts: object): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [`${prefix}${k}`, v as number]));
}
