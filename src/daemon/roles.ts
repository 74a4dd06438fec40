// One role built from a loaded node config, the way src/lab/world.ts wires roles, with one face for
// the daemon: counters, bindings, a graceful stop and events for the log.
import { createEngine } from '../engine/index.js';
import type { Engine } from '../engine/types.js';
import type { LoadedNode, PolicyKnobs } from '../config/index.js';
import type { CertCache } from '../keys/cache.js';
import type { Identity } from '../keys/keyfile.js';
import type { Clock, Host } from '../net/types.js';
import { HomeAgent } from '../roles/ha.js';
import { SecurityGateway } from '../roles/sgw.js';
import { ManualSpiGateway } from '../roles/sgw/manual.js';
import { MobileNode } from '../roles/smn.js';
import type { Suites } from '../roles/common/suites.js';
import { parseAddressOrPrefix, prefixWithin } from '../topology/map.js';
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

export type RoleEvent = { event: string; [field: string]: unknown };

export interface RoleSetup {
  loaded: LoadedNode;
  host: Host;
  clock: Clock;
  engine: Engine;
  identity?: Identity;
  certs?: CertCache;
  mnHaKeys?: MnHaEntry[];
  onEvent(e: RoleEvent): void;
}

export interface RunningRole {
  /** Role counters by name (decisions, drops by reason, messages sent). */
  counters(): Record<string, number>;
  /** HA: its bindings; SMN: its registration and position; SGW: none. */
  bindings(): HaBindingView[] | SmnMobilityView | undefined;
  /** Before close: what the role owes its peers on the way out (the SMN deregisters). */
  leave(waitMs: number): Promise<void>;
  close(): void;
}

/** The daemon's face of an SGW (also used for the lab's kept SGWs). */
export function sgwFace(sgw: SecurityGateway): RunningRole {
  return { counters: () => sgw.counters(), bindings: () => undefined, leave: async () => {}, close: () => sgw.close() };
}

/** The suites a role keys with, from the node's policy knobs. */
export function suitesOf(p: PolicyKnobs): Suites {
  return { esp: p.esp, nextHopAh: p.nextHopMac, coverage: p.coverage, endAh: p.endEndAh ? p.nextHopMac : undefined };
}

export function buildRole(s: RoleSetup): RunningRole {
  const { node, map } = s.loaded;
  if (node.role === 'sgw') {
    // Manual SAs first: their hook sees the datagrams they own before the SKIP SGW's does.
    const manual = node.manualSas?.length ? buildManualSas(s) : undefined;
    let sgw: SecurityGateway;
    try {
      sgw = new SecurityGateway({
        host: s.host, clock: s.clock, map, name: node.name, identity: s.identity!, certs: s.certs!, engine: s.engine, insideInterface: node.sgw!.inside,
        suites: suitesOf(node.policy), plainInbound: node.policy.plainInbound, failureRate: node.policy.icmpRateLimit,
      });
    } catch (err) {
      manual?.close();
      throw err;
    }
    const face = sgwFace(sgw);
    if (!manual) return face;
    s.onEvent({ event: 'manual_sas_installed', count: node.manualSas!.length, names: node.manualSas!.map((e) => e.name) });
    return {
      ...face,
      counters: () => ({ ...face.counters(), ...manual.counters() }),
      close: () => {
        manual.close();
        face.close();
        s.onEvent({ event: 'manual_sas_removed', count: node.manualSas!.length });
      },
    };
  }
  if (node.role === 'smn') return buildSmn(s);
  return buildHa(s);
}

/** The node's manual SPI-mode SAs on an engine of their own (same implementation as the role's). */
function buildManualSas(s: RoleSetup): ManualSpiGateway {
  const { node, paths } = s.loaded;
  const side = (which: 'inside' | 'outside') => node.interfaces.find((i) => i.name === node.sgw![which])!;
  return new ManualSpiGateway({
    host: s.host, clock: s.clock, engine: createEngine(s.engine.impl), entries: node.manualSas!, keys: paths.manualKeys!,
    inside: side('inside'), outside: side('outside'),
  });
}

function buildSmn(s: RoleSetup): RunningRole {
  const { node, map } = s.loaded;
  const home = node.smn!.homeAddress;
  const key = s.mnHaKeys?.find((e) => e.homeAddress === home);
  if (!key) throw new Error(`the MN-HA key file has no line for this SMN's home address ${home}; add '${home} <SPI> <key hex>' (the same line as on its HA)`);
  const smn = new MobileNode({
    host: s.host, clock: s.clock, map, identity: s.identity!, certs: s.certs!, engine: s.engine, interface: node.interfaces[0].name,
    // A copy: the registration client zeroes its key when it stops, the daemon zeroes the file's.
    mnHaKey: { spi: key.auth.spi, key: key.auth.key.slice() },
    knownBorders: node.smn!.borderSgws, suites: suitesOf(node.policy),
  });
  smn.onRegistration(({ type, ...fields }) => s.onEvent({ event: `registration_${type}`, ...fields }));
  return smnFace(smn, s.clock);
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
      return { homeAddress: home, registration: smn.registration.state, place: position.place, careOf: position.careOf, site: position.site, remainingSeconds: reg && remaining(reg.expiresAt) };
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
    close: () => smn.close(),
  };
}

function buildHa(s: RoleSetup): RunningRole {
  const { node, map } = s.loaded;
  const ha = map.homeAgent(node.name)!;
  const served = node.ha!.serves.map((text) => parseAddressOrPrefix(text));
  const mobileNodes = (s.mnHaKeys ?? []).filter((e) => served.some((p) => prefixWithin(parseAddressOrPrefix(e.homeAddress), p)));
  if (mobileNodes.length === 0) throw new Error(`the MN-HA key file has no line for a home address this HA serves (${node.ha!.serves.join(', ')}); add '<home address> <SPI> <key hex>' per mobile node`);
  const homeInterface = node.interfaces.find((i) => i.address === ha.address)!.name;
  const agent = new HomeAgent({ host: s.host, clock: s.clock, address: ha.address, homeInterface, mobileNodes });
  agent.on((e) => {
    if (e.type === 'binding') s.onEvent({ event: 'binding', homeAddress: e.binding.homeAddress, careOf: e.binding.careOf, lifetime: e.binding.lifetime });
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
      agent.bindings().map((b) => ({ homeAddress: b.homeAddress, careOf: b.careOf, lifetimeSeconds: b.lifetime, remainingSeconds: Math.max(0, Math.round((b.expiresAt - s.clock.now()) / 1000)) })),
    leave: async () => {},
    close: () => agent.close(),
  };
}

function prefixed(prefix: string, counts: object): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [`${prefix}${k}`, v as number]));
}
