/*
 * InterfaceLoops: the I/O loops of one Linux host (a LinuxNetwork role host or an AttachedHost daemon) on ONE
 * native engine, the node's, shared with its role (CONTRACT.md, DESIGN §1: roles are table compilers).
 *
 *   start(port)     one IoLoop per interface (and per extra TUN, e.g. a lab host's applications): it reads the
 *                   port's TUN and runs OUTBOUND with the port's policy table (tunTable = tableOf(iface)); a
 *                   DELIVER an SA opened goes out by the kernel's routes (deliver: 'route'); its raw receivers
 *                   take only what arrives on `bindInterface`.
 *   tableOf(iface)  the policy table id of an interface: 1, 2, … in the order asked (0 stays the role's own
 *                   table for engine.process); stable for the host's lifetime.
 *   punts           a punt that carries engine context (hasEngineContext) goes to the onEnginePunt handlers, the
 *                   rest to the port's input handler (the host's input path with the arrival interface), as
 *                   every punt did before the roles compiled tables. Without an onEnginePunt handler, every punt
 *                   takes the input path. Kernel multicast (224.0.0.0 and up) is left out.
 *   no engine       given none, the host makes an empty engine of its own (punts everything, as before) and
 *                   closes it on stop(); a given engine is the role's and stays open.
 *   stats()         the loops' counters summed (fastPath, punted, puntReasons, tx errors, …).
 */
import { createEngine } from '../../engine/index.js';
import {
  flatIoStats,
  IoLoop,
  type InjectPacket,
  type IoLoopOptions,
  type IoStats,
  type PuntedPacket,
} from '../../engine/io.js';
import { NativeEngine } from '../../engine/native.js';
import type { ReasonName } from '../../engine/types.js';
import type { EnginePunt, HostDataPath } from '../types.js';

/** Reasons whose punt carries engine context whatever its SA (CONTRACT.md, Host side). */
const CONTEXT_REASONS: ReadonlySet<ReasonName> = new Set<ReasonName>([
  'nexthop_plain',
  'no_route',
  'relay_denied',
  'selector',
  'deliver_local',
  // A SKIP layer addressed to us under a key with no SA: the role keys it at once (a first packet's latency) instead
  // of running INBOUND again in JavaScript to learn what the engine already said.
  'unknown_key',
]);
/**
 * `tc filter add` arguments that redirect every IPv4 frame arriving on `dev` into `tun` at ingress (the ingress qdisc
 * must exist): how a role host's interface reaches its I/O loop. `pref` pins the filter so it can be removed by it.
 */
export function ingressRedirectArgs(dev: string, tun: string, pref?: number): string[] {
  const at = pref === undefined ? [] : ['pref', String(pref)];
  return [
    'filter',
    'add',
    'dev',
    dev,
    'ingress',
    ...at,
    'protocol',
    'ip',
    'u32',
    'match',
    'u32',
    '0',
    '0',
    'action',
    'mirred',
    'egress',
    'redirect',
    'dev',
    tun,
  ];
}

/**
 * The MTU the host's applications see (an SMN's home address, a lab host's own probes). Measured on 1500-byte links
 * (Figure 6, SMN away): a CH's reply crosses the HA's IP-in-IP (20), SGW0's End-End SKIP/ESP and the Next-hop layer
 * (≈ 220 in all with the default suites), so a 1260-byte datagram is the largest that arrives; 1200 leaves room for
 * an End-End AH or the UDP transport (28).
 */
export const APP_MTU = 1200;
const IPV4_DST = 16;
const FIRST_MULTICAST_OCTET = 224;

/** One TUN an I/O loop reads: an interface's (tc ingress redirects into it) or another (a host's applications'). */
export interface LoopPort {
  /** The name punts and tables know it by: the interface's name. */
  iface: string;
  /** The TUN device (created by the loop, removed when it stops). */
  tun: string;
  mtu: number;
  /** The raw receivers (and a UDP transport) take only what arrives on this device (default: `iface`). */
  bindInterface?: string;
  /** Addresses 'a.b.c.d/len' on the TUN (an application port's). */
  addresses?: readonly string[];
  /**
   * 'route' (default): the TUN is an interface's port, what an SA opened goes on by the kernel's routes; 'tun': it is
   * the applications' own device, what the host delivers them is written into it.
   */
  deliver?: 'tun' | 'route';
  /** With deliver 'route': the home agent's tunnel the loop peels for the kernel (IoLoopOptions.kernelTunnel). */
  kernelTunnel?: { from: string; to: string; protocol?: number };
}

/** How every loop of the host moves packets (a daemon's node config dataPath). */
export interface LoopTransport {
  udpPort?: number;
  workers?: number;
  pollMicros?: number;
  /** The workers' nice value (IoLoopOptions.workerNice). */
  workerNice?: number;
}

export interface InterfaceLoopsOptions {
  /** The role's engine, shared by every loop; absent: an empty engine owned (and closed) by these loops. */
  engine?: NativeEngine;
  /** A namespace (`ip netns add`) to open the TUNs and sockets in; default the current one. */
  netns?: string;
  transport?: LoopTransport;
  /** Every loop hands the plain FORWARDs it read from its TUN back to the kernel (IoLoopOptions.plainByKernel). */
  plainByKernel?: boolean;
  /**
   * Whether an IPv4 address (u32) is local to the host (an interface's or a home address): tells a peeled not_ipsec
   * apart.
   */
  isLocalAddress: (address: number) => boolean; // a property: it is passed on detached from the options object
  /** What a punt handler throws. */
  onError(error: unknown): void;
}

/** The loops' counters summed over the host's interfaces: every numeric IoStats counter, puntReasons by reason. */
export interface DataPathStats {
  counters: Record<string, number>;
  /** Packets the loops carried out without JS (IoStats.fastPath, summed). */
  fastPath: number;
  /** Packets handed to JS (IoStats.punted, summed): the slow path. */
  punted: number;
  /** The punts by reason (only reasons punted at least once). */
  puntReasons: Partial<Record<ReasonName, number>>;
}

/**
 * Whether a punt carries engine context (CONTRACT.md): an SA had authenticated it, or its reason is one the engine
 * gives only after opening or refusing a layer (nexthop_plain, no_route, relay_denied, selector, deliver_local) or
 * parsing one addressed to us (unknown_key), or
 * it is a not_ipsec punt of a datagram peeled out of bare IP-in-IP. The punt alone does not tell a peeled datagram
 * from a first-layer not_ipsec (both SA 0): a first-layer one was read under an `inbound` policy, so it is addressed
 * to one of the host's interface addresses; a peeled one is addressed elsewhere (its tunnel's inner destination).
 */
export function hasEngineContext(
  punt: Pick<PuntedPacket, 'packet' | 'reason' | 'sa'>,
  isLocalAddress: (address: number) => boolean,
): boolean {
  if (punt.sa !== 0 || CONTEXT_REASONS.has(punt.reason)) return true;
  if (punt.reason !== 'not_ipsec' || punt.packet.length < 20) return false;
  return !isLocalAddress(readU32(punt.packet, IPV4_DST));
}

function readU32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

export class InterfaceLoops implements HostDataPath {
  readonly engine: NativeEngine;
  /** True when the engine is the role's (given), false when these loops made an empty one. */
  readonly shared: boolean;
  private readonly loops = new Map<string, IoLoop>();
  private readonly tables = new Map<string, number>();
  private readonly puntHandlers: ((punt: EnginePunt) => void)[] = [];
  private stopped = false;

  constructor(private readonly options: InterfaceLoopsOptions) {
    if (options.engine) {
      if (!(options.engine instanceof NativeEngine))
        throw new TypeError(
          'InterfaceLoops: the engine must be the native one (the loops run it on their own threads)',
        );
      this.engine = options.engine;
      this.shared = true;
    } else {
      const engine = createEngine('native');
      if (!(engine instanceof NativeEngine)) throw new Error('the I/O loops need the native addon (run npm rebuild)');
      this.engine = engine;
      this.shared = false;
    }
  }

  tableOf(iface: string): number {
    let table = this.tables.get(iface);
    if (table === undefined) {
      table = this.tables.size + 1;
      this.tables.set(iface, table);
    }
    return table;
  }

  onEnginePunt(handler: (punt: EnginePunt) => void): () => void {
    this.puntHandlers.push(handler);
    return () => {
      const i = this.puntHandlers.indexOf(handler);
      if (i >= 0) this.puntHandlers.splice(i, 1);
    };
  }

  /**
   * Starts the loop of one port on the shared engine; `onInput` gets every punt without engine context (a copy
   * the handler may keep) with the port's interface name. Throws why the loop could not start.
   */
  start(port: LoopPort, onInput: (packet: Uint8Array, iface: string) => void): IoLoop {
    if (this.stopped) throw new Error(`interface loops stopped: cannot start ${port.iface}`);
    if (this.loops.has(port.iface)) throw new Error(`interface ${port.iface} already has an I/O loop`);
    const { udpPort, workers, pollMicros, workerNice } = this.options.transport ?? {};
    const options: IoLoopOptions = {
      engine: this.engine,
      netns: this.options.netns,
      tun: { name: port.tun, mtu: port.mtu, offload: true, addresses: port.addresses },
      raw: true,
      udpPort,
      workers,
      pollMicros,
      workerNice,
      plainByKernel: this.options.plainByKernel,
      bindInterface: port.bindInterface ?? port.iface,
      tunTable: this.tableOf(port.iface),
      deliver: port.deliver ?? 'route',
      kernelTunnel: port.kernelTunnel,
      onPunt: (packets) => this.dispatch(port.iface, packets, onInput),
    };
    const loop = IoLoop.start(options);
    this.loops.set(port.iface, loop);
    return loop;
  }

  loop(iface: string): IoLoop | undefined {
    return this.loops.get(iface);
  }

  /** Hands packets to `iface`'s loop; false when it has none running (never started, stopped, or its engine closed). */
  inject(iface: string, packets: readonly InjectPacket[]): boolean {
    const loop = this.loops.get(iface);
    if (this.stopped || !loop?.running) return false;
    loop.inject(packets);
    return true;
  }

  /** Every loop's counters as one flat record (flatIoStats: `punted_<reason>` per reason), summed. */
  flatCounters(): Record<string, number> {
    const sum: Record<string, number> = {};
    for (const loop of this.loops.values()) {
      for (const [name, n] of Object.entries(flatIoStats(loop.stats()))) sum[name] = (sum[name] ?? 0) + n;
    }
    return sum;
  }

  stats(): DataPathStats {
    const counters: Record<string, number> = {};
    let fastPath = 0;
    const puntReasons: Partial<Record<ReasonName, number>> = {};
    for (const loop of this.loops.values()) {
      const s: IoStats = loop.stats();
      for (const [name, n] of Object.entries(s)) if (typeof n === 'number') counters[name] = (counters[name] ?? 0) + n;
      fastPath += s.fastPath;
      for (const [reason, n] of Object.entries(s.puntReasons) as [ReasonName, number][])
        if (n) puntReasons[reason] = (puntReasons[reason] ?? 0) + n;
    }
    return { counters, fastPath, punted: counters.punted ?? 0, puntReasons };
  }

  /** Stops every loop (idempotent); closes the engine only if these loops made it. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const loop of this.loops.values()) loop.stop();
    if (!this.shared) this.engine.close();
  }

  private dispatch(iface: string, packets: PuntedPacket[], onInput: (packet: Uint8Array, iface: string) => void): void {
    if (this.stopped) return;
    for (const p of packets) {
      // rekey_due is an event without bytes (an SA reached its soft limit): the role's, like any punt with an SA.
      if (p.reason !== 'rekey_due' && (p.packet.length < 20 || p.packet[IPV4_DST] >= FIRST_MULTICAST_OCTET)) continue;
      try {
        if (this.puntHandlers.length > 0 && hasEngineContext(p, this.options.isLocalAddress)) {
          const punt: EnginePunt = { packet: p.packet.slice(), reason: p.reason, sa: p.sa, iface };
          for (const handler of [...this.puntHandlers]) handler(punt);
        } else {
          onInput(p.packet.slice(), iface);
        }
      } catch (error) {
        this.options.onError(error);
      }
    }
  }
}
