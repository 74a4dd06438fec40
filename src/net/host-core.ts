/*
 * HostCore: the packet logic of a Host (types.ts) that is the same in every world — interfaces and
 * local addresses, the route table (longest prefix match), hooks, the send path, the input path
 * (local delivery, or forwarding with one TTL decrement), inject queueing, onDeliver handlers and
 * the drop counters. MemoryHost, LinuxHost and AttachedHost (linux/attached.ts) extend it.
 *
 * What a world supplies (the abstract and overridable members below):
 *   defer(run)            runs `run` later, off the caller's stack (delivery to oneself, inject).
 *   linkName(iface)       the link an interface is attached to (PacketContext.link, interfaces()).
 *   transmit(...)         puts a routed packet on the interface's link towards a next hop.
 * An interface's `mtu` (if the world sets one) is the largest packet its link carries: route() fragments above it.
 *   delivered(...)        after the onDeliver handlers, e.g. hands the packet to the kernel's sockets.
 *   routeAdded/Removed    a route of addRoute() entered or left the table (a kernel mirrors it).
 *   localAddressAdded/Removed  addLocalAddress()/removeLocalAddress() changed the set.
 * Attaching and moving interfaces and proxy ARP are the world's own: its addInterface,
 * moveInterface and setProxy use registerInterface(), removeRoutesThrough() and readdress();
 * adoptRoute() takes in a route the world already had.
 *
 * NetworkCore: the hosts and links of a Network by unique name, for MemoryNetwork and LinuxNetwork.
 * LinkCore: a link's capture record and live taps, and the two-ends rule of 'p2p', for their links.
 */
import { ipToU32, parsePrefix, prefixContains, prefixMask, u32ToIp, type Prefix } from '../wire/addr.js';
import { fragmentIpv4 } from '../wire/fragment.js';
import { parseIpv4 } from '../wire/ipv4.js';
import { decrementTtl } from './ip.js';
import type {
  CapturedPacket,
  Clock,
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

/** What the core needs of an interface; a world adds its own attachment (link, port…). */
export interface CoreInterface {
  name: string;
  address: number;
  prefix: Prefix;
  /** The largest packet its link carries (absent: unlimited); route() fragments above it. */
  mtu?: number;
}

interface StoredRoute {
  prefix: Prefix;
  via?: number;
  iface: string;
  /** The interface's own subnet: it follows the interface, removeRoute() never takes it. */
  connected: boolean;
}

export abstract class HostCore<I extends CoreInterface> implements Host {
  private readonly ifaces = new Map<string, I>();
  private readonly extraLocal = new Set<number>();
  private readonly routeTable: StoredRoute[] = [];
  private readonly hooks: Record<HookStage, PacketHook[]> = { input: [], output: [] };
  private readonly handlers: PacketHandler[] = [];
  private readonly drops: Record<HostDropReason, number> = {
    bad_ipv4: 0,
    no_route: 0,
    ttl_expired: 0,
    not_for_us: 0,
    unresolved: 0,
    too_big: 0,
  };

  constructor(
    readonly name: string,
    readonly forwarding: boolean,
    private readonly clock: Clock,
  ) {}

  abstract addInterface(name: string, link: string, cidr: string): void;
  abstract moveInterface(name: string, link: string, cidr: string): void;
  abstract setProxy(address: string, iface: string, enabled: boolean): void;

  /** Runs `run` later, off the caller's stack. */
  protected abstract defer(run: () => void): void;
  protected abstract linkName(iface: I): string;
  /** Puts `packet` on `iface`'s link for `nextHop`; false when nothing there answers for it. */
  protected abstract transmit(packet: Uint8Array, iface: I, nextHop: number, carries?: Uint8Array): boolean;
  /** After the onDeliver handlers had a locally addressed packet. */
  protected delivered(_packet: Uint8Array): void {}
  /** addRoute() put a route in the table (`via` as the caller wrote it). */
  protected routeAdded(_prefix: Prefix, _via: string | undefined, _iface: string): void {}
  /** A route of addRoute() left the table (removeRoute, replacement, or its interface moved). */
  protected routeRemoved(_prefix: Prefix): void {}
  protected localAddressAdded(_address: string): void {}
  protected localAddressRemoved(_address: string): void {}

  interfaces(): readonly InterfaceInfo[] {
    return [...this.ifaces.values()].map((i) => ({
      name: i.name,
      link: this.linkName(i),
      address: u32ToIp(i.address),
      prefixLength: i.prefix.length,
    }));
  }

  addLocalAddress(address: string): void {
    const value = ipToU32(address);
    if (this.extraLocal.has(value)) return;
    // The world first: if it refuses, the set stays as it was.
    this.localAddressAdded(address);
    this.extraLocal.add(value);
  }

  removeLocalAddress(address: string): void {
    if (this.extraLocal.delete(ipToU32(address))) this.localAddressRemoved(address);
  }

  isLocal(address: string): boolean {
    return this.isLocalU32(ipToU32(address));
  }

  addRoute(prefixText: string, route: { via?: string; iface?: string }): void {
    const prefix = parsePrefix(prefixText);
    const via = route.via === undefined ? undefined : ipToU32(route.via);
    let ifaceName = route.iface;
    if (ifaceName === undefined) {
      if (via === undefined)
        throw new Error(`host '${this.name}': route ${prefixText} needs 'via' (a next-hop router) or 'iface'`);
      ifaceName = [...this.ifaces.values()].find((i) => prefixContains(i.prefix, via))?.name;
      if (ifaceName === undefined)
        throw new Error(
          `host '${this.name}': route ${prefixText} via ${route.via}: no interface is on that next hop's subnet ` +
            `(add the interface first or name 'iface')`,
        );
    } else {
      this.iface(ifaceName);
    }
    this.removeRoute(prefixText);
    // The world first: if it refuses, the table stays without the route.
    this.routeAdded(prefix, route.via, ifaceName);
    this.routeTable.push({ prefix, via, iface: ifaceName, connected: false });
  }

  removeRoute(prefixText: string): void {
    const prefix = parsePrefix(prefixText);
    const i = this.routeTable.findIndex(
      (r) => !r.connected && r.prefix.network === prefix.network && r.prefix.length === prefix.length,
    );
    if (i < 0) return;
    this.routeTable.splice(i, 1);
    this.routeRemoved(prefix);
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
      const ctx: PacketContext = { host: this.name, time: this.clock.now() };
      if (this.hooks.output.some((hook) => hook(packet, ctx) === 'consumed')) return { ok: true };
    }
    if (this.isLocalU32(check.header.dst)) {
      const copy = packet.slice();
      this.defer(() => this.deliver(copy, { host: this.name, time: this.clock.now() }));
      return { ok: true };
    }
    return this.route(packet, check.header.dst, options.carries);
  }

  inject(datagram: Uint8Array, options: InjectOptions = {}): void {
    const iface = options.iface === undefined ? undefined : this.iface(options.iface);
    const copy = datagram.slice();
    this.defer(() => this.receive(copy, iface, options.bypassHooks));
  }

  addHook(stage: HookStage, hook: PacketHook): () => void {
    return addRemovable(this.hooks[stage], hook);
  }

  onDeliver(handler: PacketHandler): () => void {
    return addRemovable(this.handlers, handler);
  }

  counters(): Readonly<Record<HostDropReason, number>> {
    return { ...this.drops };
  }

  /**
   * A frame arrives from a link (or is injected): input hooks, then local delivery or forwarding. Called by the world.
   */
  receive(datagram: Uint8Array, iface: I | undefined, bypassHooks = false): void {
    const check = parseIpv4(datagram, 0, datagram.length, { allowFragments: true });
    if (!check.ok) {
      this.drop('bad_ipv4');
      return;
    }
    const packet = datagram.subarray(0, check.header.totalLength);
    const ctx: PacketContext = {
      host: this.name,
      iface: iface?.name,
      link: iface && this.linkName(iface),
      time: this.clock.now(),
    };
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

  /** Throws, naming the host, if it already has an interface `name` (check before touching the world). */
  protected assertNewInterface(name: string): void {
    if (this.ifaces.has(name)) throw new Error(`host '${this.name}' already has an interface '${name}'`);
  }

  /** Adds an attached interface and its connected route. */
  protected registerInterface(iface: I): void {
    this.ifaces.set(iface.name, iface);
    this.routeTable.push({ prefix: iface.prefix, iface: iface.name, connected: true });
  }

  /** Takes in a route the world already has (e.g. a kernel's at attach): no routeAdded. */
  protected adoptRoute(prefix: Prefix, via: number | undefined, iface: string): void {
    this.iface(iface);
    this.routeTable.push({ prefix, via, iface, connected: false });
  }

  /** Removes every route out of interface `name`, its connected route included (routeRemoved for the others). */
  protected removeRoutesThrough(name: string): void {
    for (let i = this.routeTable.length - 1; i >= 0; i--) {
      const r = this.routeTable[i];
      if (r.iface !== name) continue;
      this.routeTable.splice(i, 1);
      if (!r.connected) this.routeRemoved(r.prefix);
    }
  }

  /** Gives `iface` a new address and the connected route of its subnet (after removeRoutesThrough). */
  protected readdress(iface: I, address: number, prefix: Prefix): void {
    iface.address = address;
    iface.prefix = prefix;
    this.routeTable.push({ prefix, iface: iface.name, connected: true });
  }

  protected iface(name: string): I {
    const iface = this.ifaces.get(name);
    if (!iface)
      throw new Error(
        `host '${this.name}' has no interface '${name}' (has: ${[...this.ifaces.keys()].join(', ') || 'none'})`,
      );
    return iface;
  }

  /** Local delivery: the onDeliver handlers, then delivered(). */
  protected deliver(packet: Uint8Array, ctx: PacketContext): void {
    for (const handler of [...this.handlers]) handler(packet, ctx);
    this.delivered(packet);
  }

  private route(packet: Uint8Array, dst: number, carries?: Uint8Array): SendResult {
    const route = this.lookup(dst);
    if (!route) return this.drop('no_route');
    const iface = this.iface(route.iface);
    const next = route.via ?? dst;
    if (packet.length > (iface.mtu ?? Infinity)) {
      // RFC 791: what the link cannot carry leaves in fragments, unless DF forbids it. A sealed packet with DF goes to
      // the world whole when it says what it carries: the link refuses it and its sender learns the path MTU (ICMP
      // 3/4).
      const pieces = fragmentIpv4(packet, iface.mtu!);
      if (!pieces && !carries) return this.drop('too_big');
      for (const piece of pieces ?? [packet])
        if (!this.transmit(piece, iface, next, carries)) return this.drop('unresolved');
      return { ok: true };
    }
    if (!this.transmit(packet, iface, next, carries)) return this.drop('unresolved');
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

  private drop(reason: HostDropReason): { ok: false; reason: HostDropReason } {
    this.drops[reason]++;
    return { ok: false, reason };
  }
}

export abstract class NetworkCore<H extends Host, L extends Link> implements Network {
  abstract readonly clock: Clock;
  private readonly hostsByName = new Map<string, H>();
  private readonly linksByName = new Map<string, L>();

  abstract addHost(name: string, options?: HostOptions): H;
  abstract addLink(name: string, options?: LinkOptions): L;

  host(name: string): H {
    return named(this.hostsByName, 'host', name);
  }

  link(name: string): L {
    return named(this.linksByName, 'link', name);
  }

  hosts(): readonly H[] {
    return [...this.hostsByName.values()];
  }

  links(): readonly L[] {
    return [...this.linksByName.values()];
  }

  /** Throws if a host is already called `name` (check before creating anything in the world). */
  protected assertNewHost(name: string): void {
    assertUnique(this.hostsByName, 'host', name);
  }

  protected assertNewLink(name: string): void {
    assertUnique(this.linksByName, 'link', name);
  }

  protected registerHost(host: H): H {
    this.hostsByName.set(host.name, host);
    return host;
  }

  protected registerLink(link: L): L {
    this.linksByName.set(link.name, link);
    return link;
  }
}

export abstract class LinkCore implements Link {
  private readonly frames: CapturedPacket[] = [];
  private readonly listeners = new Set<(frame: CapturedPacket) => void>();

  constructor(
    readonly name: string,
    readonly kind: LinkKind,
    readonly latencyMs: number,
  ) {}

  abstract setLoss(loss: LossModel | undefined, seed?: number): void;

  /** The recorded frames in the order record() got them. */
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

  /** A frame entered the link: keep it and show it to the live taps. Called by the world. */
  record(frame: CapturedPacket): void {
    this.frames.push(frame);
    for (const listener of this.listeners) listener(frame);
  }

  /** Throws if one more end cannot attach: a 'p2p' link that has `ends` ≥ 2 already. */
  protected assertRoomFor(ends: number): void {
    if (this.kind === 'p2p' && ends >= 2)
      throw new Error(`link '${this.name}' is point-to-point and already has two ends`);
  }
}

function named<T>(byName: ReadonlyMap<string, T>, kind: string, name: string): T {
  const item = byName.get(name);
  if (!item) throw new Error(`no ${kind} named '${name}' (known: ${[...byName.keys()].join(', ') || 'none'})`);
  return item;
}

function assertUnique(byName: ReadonlyMap<string, unknown>, kind: string, name: string): void {
  if (byName.has(name)) throw new Error(`${kind} '${name}' already exists (${kind} names must be unique)`);
}

/** 'a.b.c.d/len' of an interface: its address and the subnet it is on. */
export function parseCidr(cidr: string): { address: number; prefix: Prefix } {
  const slash = cidr.indexOf('/');
  if (slash < 0) throw new RangeError(`interface address '${cidr}' needs a prefix length (e.g. 10.0.0.1/16)`);
  const address = ipToU32(cidr.slice(0, slash));
  const length = Number(cidr.slice(slash + 1));
  if (!/^\d{1,2}$/.test(cidr.slice(slash + 1)) || length > 32)
    throw new RangeError(`bad prefix length in '${cidr}' (expected 0..32)`);
  return { address, prefix: { network: (address & prefixMask(length)) >>> 0, length } };
}

export function prefixString(p: Prefix): string {
  return `${u32ToIp(p.network)}/${p.length}`;
}

function toRouteEntry(route: StoredRoute): RouteEntry {
  const entry: RouteEntry = { prefix: prefixString(route.prefix), iface: route.iface };
  if (route.via !== undefined) entry.via = u32ToIp(route.via);
  return entry;
}

function addRemovable<T>(list: T[], item: T): () => void {
  list.push(item);
  return () => {
    const i = list.indexOf(item);
    if (i >= 0) list.splice(i, 1);
  };
}
