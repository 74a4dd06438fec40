// MemoryNetwork: the Network interface (types.ts) on in-process links and a virtual clock.
import { ipToU32, parsePrefix, prefixContains, prefixMask, u32ToIp, type Prefix } from '../wire/addr.js';
import { parseIpv4 } from '../wire/ipv4.js';
import { VirtualClock } from './clock.js';
import { decrementTtl } from './ip.js';
import type {
  CapturedPacket,
  Host,
  HookStage,
  HostDropReason,
  HostOptions,
  InjectOptions,
  InterfaceInfo,
  Link,
  LinkKind,
  LinkOptions,
  LossModel,
  Network,
  PacketContext,
  PacketHandler,
  PacketHook,
  RouteEntry,
  SendOptions,
  SendResult,
} from './types.js';

const DEFAULT_LATENCY_MS = 1;

export interface MemoryNetworkOptions {
  /** Virtual time at the start, in Unix ms (default 2026-01-01T00:00:00Z). */
  startMs?: number;
}

const DEFAULT_START_MS = Date.UTC(2026, 0, 1);

export class MemoryNetwork implements Network {
  readonly clock: VirtualClock;
  private readonly hostsByName = new Map<string, MemoryHost>();
  private readonly linksByName = new Map<string, MemoryLink>();

  constructor(options: MemoryNetworkOptions = {}) {
    this.clock = new VirtualClock(options.startMs ?? DEFAULT_START_MS);
  }

  addHost(name: string, options: HostOptions = {}): MemoryHost {
    if (this.hostsByName.has(name)) throw new Error(`host '${name}' already exists (host names must be unique)`);
    const host = new MemoryHost(this, name, options.forwarding ?? false);
    this.hostsByName.set(name, host);
    return host;
  }

  addLink(name: string, options: LinkOptions = {}): MemoryLink {
    if (this.linksByName.has(name)) throw new Error(`link '${name}' already exists (link names must be unique)`);
    const link = new MemoryLink(this.clock, name, options.kind ?? 'multi', options.latencyMs ?? DEFAULT_LATENCY_MS);
    this.linksByName.set(name, link);
    return link;
  }

  host(name: string): MemoryHost {
    const host = this.hostsByName.get(name);
    if (!host) throw new Error(`no host named '${name}' (known: ${[...this.hostsByName.keys()].join(', ') || 'none'})`);
    return host;
  }

  link(name: string): MemoryLink {
    const link = this.linksByName.get(name);
    if (!link) throw new Error(`no link named '${name}' (known: ${[...this.linksByName.keys()].join(', ') || 'none'})`);
    return link;
  }

  hosts(): readonly MemoryHost[] {
    return [...this.hostsByName.values()];
  }

  links(): readonly MemoryLink[] {
    return [...this.linksByName.values()];
  }

  /**
   * Runs events until the queue is empty, or only those up to `untilMs`. Role timers (lifetimes,
   * re-registrations) count as events, so with roles running use runFor().
   */
  run(untilMs?: number): number {
    return this.clock.run(untilMs);
  }

  /** Runs every event of the next `durationMs` of virtual time. */
  runFor(durationMs: number): number {
    return this.clock.runFor(durationMs);
  }
}

interface MemoryInterface {
  name: string;
  host: MemoryHost;
  link: MemoryLink;
  address: number;
  prefix: Prefix;
  /** Addresses this interface answers for on its link besides its own (proxy ARP). */
  proxies: Set<number>;
}

export class MemoryLink implements Link {
  private readonly attached = new Set<MemoryInterface>();
  private readonly frames: CapturedPacket[] = [];
  private readonly listeners = new Set<(frame: CapturedPacket) => void>();
  private loss: LossModel | undefined;
  private random: () => number = seededRandom(1);
  private framesSent = 0;

  constructor(
    private readonly clock: VirtualClock,
    readonly name: string,
    readonly kind: LinkKind,
    readonly latencyMs: number,
  ) {
    if (!Number.isFinite(latencyMs) || latencyMs < 0) throw new RangeError(`link '${name}': latencyMs must be a finite number >= 0, got ${latencyMs}`);
  }

  setLoss(loss: LossModel | undefined, seed = 1): void {
    if (typeof loss === 'number' && !(loss >= 0 && loss < 1)) throw new RangeError(`link '${this.name}': loss rate must be in [0, 1), got ${loss}`);
    this.loss = loss;
    this.random = seededRandom(seed);
  }

  captures(): readonly CapturedPacket[] {
    return this.frames;
  }

  clearCaptures(): void {
    this.frames.length = 0;
  }

  tap(listener: (frame: CapturedPacket) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  attach(iface: MemoryInterface): void {
    if (this.kind === 'p2p' && this.attached.size >= 2) throw new Error(`link '${this.name}' is point-to-point and already has two ends`);
    this.attached.add(iface);
  }

  detach(iface: MemoryInterface): void {
    this.attached.delete(iface);
  }

  /** Puts a frame for `nextHop` on the link; false when no interface answers for that address. */
  transmit(from: MemoryInterface, nextHop: number, datagram: Uint8Array): boolean {
    const index = this.framesSent++;
    const receiver = this.resolve(from, nextHop);
    let fate: CapturedPacket['fate'] = 'unresolved';
    if (receiver) fate = this.isLost(datagram, index) ? 'lost' : 'delivered';
    const frame: CapturedPacket = {
      time: this.clock.now(),
      link: this.name,
      from: `${from.host.name}/${from.name}`,
      to: receiver ? `${receiver.host.name}/${receiver.name}` : undefined,
      fate,
      packet: datagram.slice(),
    };
    this.frames.push(frame);
    for (const listener of this.listeners) listener(frame);
    if (receiver && fate === 'delivered') {
      const copy = datagram.slice();
      this.clock.setTimer(this.latencyMs, () => {
        // A frame in flight is lost if the receiver left the link meanwhile (handover).
        if (receiver.link === this && this.attached.has(receiver)) receiver.host.receive(copy, receiver);
      });
    }
    return receiver !== undefined;
  }

  private resolve(from: MemoryInterface, nextHop: number): MemoryInterface | undefined {
    const others = [...this.attached].filter((iface) => iface !== from);
    if (this.kind === 'p2p') return others[0];
    return others.find((iface) => iface.address === nextHop) ?? others.find((iface) => iface.proxies.has(nextHop));
  }

  private isLost(datagram: Uint8Array, index: number): boolean {
    if (this.loss === undefined) return false;
    if (typeof this.loss === 'number') return this.random() < this.loss;
    return this.loss(datagram, index);
  }
}

interface StoredRoute {
  prefix: Prefix;
  via?: number;
  iface: string;
  connected: boolean;
}

export class MemoryHost implements Host {
  private readonly ifaces = new Map<string, MemoryInterface>();
  private readonly extraLocal = new Set<number>();
  private readonly routeTable: StoredRoute[] = [];
  private readonly hooks: Record<HookStage, PacketHook[]> = { input: [], output: [] };
  private readonly handlers: PacketHandler[] = [];
  private readonly drops: Record<HostDropReason, number> = { bad_ipv4: 0, no_route: 0, ttl_expired: 0, not_for_us: 0, unresolved: 0 };

  constructor(
    private readonly network: MemoryNetwork,
    readonly name: string,
    readonly forwarding: boolean,
  ) {}

  addInterface(name: string, link: string, cidr: string): void {
    if (this.ifaces.has(name)) throw new Error(`host '${this.name}' already has an interface '${name}'`);
    const { address, prefix } = parseCidr(cidr);
    const iface: MemoryInterface = { name, host: this, link: this.network.link(link), address, prefix, proxies: new Set() };
    iface.link.attach(iface);
    this.ifaces.set(name, iface);
    this.routeTable.push({ prefix, iface: name, connected: true });
  }

  moveInterface(name: string, link: string, cidr: string): void {
    const iface = this.iface(name);
    const { address, prefix } = parseCidr(cidr);
    const target = this.network.link(link);
    if (target !== iface.link) {
      target.attach(iface);
      iface.link.detach(iface);
    }
    iface.link = target;
    iface.address = address;
    iface.prefix = prefix;
    iface.proxies.clear();
    for (let i = this.routeTable.length - 1; i >= 0; i--) if (this.routeTable[i].iface === name) this.routeTable.splice(i, 1);
    this.routeTable.push({ prefix, iface: name, connected: true });
  }

  interfaces(): readonly InterfaceInfo[] {
    return [...this.ifaces.values()].map((i) => ({ name: i.name, link: i.link.name, address: u32ToIp(i.address), prefixLength: i.prefix.length }));
  }

  addLocalAddress(address: string): void {
    this.extraLocal.add(ipToU32(address));
  }

  removeLocalAddress(address: string): void {
    this.extraLocal.delete(ipToU32(address));
  }

  isLocal(address: string): boolean {
    return this.isLocalU32(ipToU32(address));
  }

  setProxy(address: string, iface: string, enabled: boolean): void {
    const proxies = this.iface(iface).proxies;
    if (enabled) proxies.add(ipToU32(address));
    else proxies.delete(ipToU32(address));
  }

  addRoute(prefixText: string, route: { via?: string; iface?: string }): void {
    const prefix = parsePrefix(prefixText);
    const via = route.via === undefined ? undefined : ipToU32(route.via);
    let ifaceName = route.iface;
    if (ifaceName === undefined) {
      if (via === undefined) throw new Error(`host '${this.name}': route ${prefixText} needs 'via' (a next-hop router) or 'iface'`);
      ifaceName = [...this.ifaces.values()].find((i) => prefixContains(i.prefix, via))?.name;
      if (ifaceName === undefined) throw new Error(`host '${this.name}': route ${prefixText} via ${route.via}: no interface is on that next hop's subnet (add the interface first or name 'iface')`);
    } else {
      this.iface(ifaceName);
    }
    this.removeRoute(prefixText);
    this.routeTable.push({ prefix, via, iface: ifaceName, connected: false });
  }

  removeRoute(prefixText: string): void {
    const prefix = parsePrefix(prefixText);
    const i = this.routeTable.findIndex((r) => !r.connected && r.prefix.network === prefix.network && r.prefix.length === prefix.length);
    if (i >= 0) this.routeTable.splice(i, 1);
  }

  routes(): readonly RouteEntry[] {
    return this.routeTable.map(toRouteEntry);
  }

  lookupRoute(destination: string): RouteEntry | undefined {
    const route = this.lookup(ipToU32(destination));
    return route && toRouteEntry(route);
  }

  sourceAddressFor(destination: string): string | undefined {
    const route = this.lookup(ipToU32(destination));
    return route && u32ToIp(this.iface(route.iface).address);
  }

  send(datagram: Uint8Array, options: SendOptions = {}): SendResult {
    const check = parseIpv4(datagram, 0, datagram.length, { allowFragments: true });
    if (!check.ok) return this.drop('bad_ipv4');
    const packet = datagram.subarray(0, check.header.totalLength);
    if (!options.bypassHooks) {
      const ctx: PacketContext = { host: this.name, time: this.network.clock.now() };
      if (this.hooks.output.some((hook) => hook(packet, ctx) === 'consumed')) return { ok: true };
    }
    if (this.isLocalU32(check.header.dst)) {
      const copy = packet.slice();
      this.network.clock.setTimer(0, () => this.deliver(copy, { host: this.name, time: this.network.clock.now() }));
      return { ok: true };
    }
    return this.route(packet, check.header.dst);
  }

  inject(datagram: Uint8Array, options: InjectOptions = {}): void {
    const iface = options.iface === undefined ? undefined : this.iface(options.iface);
    const copy = datagram.slice();
    this.network.clock.setTimer(0, () => this.receive(copy, iface, options.bypassHooks));
  }

  addHook(stage: HookStage, hook: PacketHook): () => void {
    this.hooks[stage].push(hook);
    return () => {
      const i = this.hooks[stage].indexOf(hook);
      if (i >= 0) this.hooks[stage].splice(i, 1);
    };
  }

  onDeliver(handler: PacketHandler): () => void {
    this.handlers.push(handler);
    return () => {
      const i = this.handlers.indexOf(handler);
      if (i >= 0) this.handlers.splice(i, 1);
    };
  }

  counters(): Readonly<Record<HostDropReason, number>> {
    return { ...this.drops };
  }

  /** A frame arrives from a link (or is injected): input hooks, then local delivery or forwarding. Called by MemoryLink. */
  receive(datagram: Uint8Array, iface: MemoryInterface | undefined, bypassHooks = false): void {
    const check = parseIpv4(datagram, 0, datagram.length, { allowFragments: true });
    if (!check.ok) {
      this.drop('bad_ipv4');
      return;
    }
    const packet = datagram.subarray(0, check.header.totalLength);
    const ctx: PacketContext = { host: this.name, iface: iface?.name, link: iface?.link.name, time: this.network.clock.now() };
    if (!bypassHooks && this.hooks.input.some((hook) => hook(packet, ctx) === 'consumed')) return;
    if (this.isLocalU32(check.header.dst)) {
      this.deliver(packet, ctx);
      return;
    }
    if (!this.forwarding) {
      this.drop('not_for_us');
      return;
    }
    if (check.header.ttl <= 1) {
      this.drop('ttl_expired');
      return;
    }
    decrementTtl(packet);
    this.route(packet, check.header.dst);
  }

  private deliver(packet: Uint8Array, ctx: PacketContext): void {
    for (const handler of [...this.handlers]) handler(packet, ctx);
  }

  private route(packet: Uint8Array, dst: number): SendResult {
    const route = this.lookup(dst);
    if (!route) return this.drop('no_route');
    const iface = this.iface(route.iface);
    if (!iface.link.transmit(iface, route.via ?? dst, packet)) return this.drop('unresolved');
    return { ok: true };
  }

  private lookup(dst: number): StoredRoute | undefined {
    let best: StoredRoute | undefined;
    for (const route of this.routeTable) {
      if (prefixContains(route.prefix, dst) && (!best || route.prefix.length > best.prefix.length)) best = route;
    }
    return best;
  }

  private isLocalU32(address: number): boolean {
    if (this.extraLocal.has(address)) return true;
    for (const iface of this.ifaces.values()) if (iface.address === address) return true;
    return false;
  }

  private iface(name: string): MemoryInterface {
    const iface = this.ifaces.get(name);
    if (!iface) throw new Error(`host '${this.name}' has no interface '${name}' (has: ${[...this.ifaces.keys()].join(', ') || 'none'})`);
    return iface;
  }

  private drop(reason: HostDropReason): { ok: false; reason: HostDropReason } {
    this.drops[reason]++;
    return { ok: false, reason };
  }
}

function parseCidr(cidr: string): { address: number; prefix: Prefix } {
  const slash = cidr.indexOf('/');
  if (slash < 0) throw new RangeError(`interface address '${cidr}' needs a prefix length (e.g. 10.0.0.1/16)`);
  const address = ipToU32(cidr.slice(0, slash));
  const length = Number(cidr.slice(slash + 1));
  if (!/^\d{1,2}$/.test(cidr.slice(slash + 1)) || length > 32) throw new RangeError(`bad prefix length in '${cidr}' (expected 0..32)`);
  return { address, prefix: { network: (address & prefixMask(length)) >>> 0, length } };
}

function toRouteEntry(route: StoredRoute): RouteEntry {
  const entry: RouteEntry = { prefix: `${u32ToIp(route.prefix.network)}/${route.prefix.length}`, iface: route.iface };
  if (route.via !== undefined) entry.via = u32ToIp(route.via);
  return entry;
}

/** mulberry32: a small seeded generator, so loss patterns repeat run to run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
