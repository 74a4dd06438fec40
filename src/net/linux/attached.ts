/*
 * AttachedHost: the Host contract (../types.ts) on the CURRENT network namespace's existing interfaces,
 * for the role daemons (`mipsec sgw|smn|ha`). The same mechanism as LinuxNetwork's hosts (./network.ts),
 * without creating anything but the redirection:
 *
 *   interfaces      the ones the node config names; each must exist and carry its configured address
 *                   (`ip -j addr`). Nothing is created or renamed; moveInterface replaces the address.
 *   from a link     every IPv4 packet arriving on a named interface is redirected at tc ingress (u32 +
 *                   mirred, filter preference FILTER_PREF) into a TUN `t-<name>` read by an IoLoop with an
 *                   empty engine, which punts it to JS with its arrival interface → input hooks. The
 *                   kernel's IP stack never sees it: local services on those interfaces stop answering.
 *                   ARP stays with the kernel. Kernel multicast (224.0.0.0 and up) is left out.
 *   routes          the kernel's main-table routes through the named interfaces are read at attach; routes
 *                   the roles add are mirrored with `ip route replace` and removed again on close.
 *   send / forward  output hooks, the route table, then a raw IP_HDRINCL socket: the kernel routes the
 *                   datagram by its table and resolves the next hop with ARP.
 *   local delivery  onDeliver handlers only (the host's own applications are not routed through the role).
 *
 * close() removes everything it added — the tc filters (and the ingress qdiscs it created), the TUNs,
 * routes, proxy entries and local addresses — and runs synchronously, so it also runs from a process
 * 'exit' handler after a crash. A filter at FILTER_PREF left by a killed daemon is replaced at attach
 * (and its ingress qdisc, when nothing else uses it, is removed on close).
 */
import { createEngine } from '../../engine/index.js';
import { IoLoop, type PuntedPacket } from '../../engine/io.js';
import { NativeEngine } from '../../engine/native.js';
import { ipToU32, parsePrefix, prefixContains, prefixMask, u32ToIp, type Prefix } from '../../wire/addr.js';
import { parseIpv4 } from '../../wire/ipv4.js';
import { decrementTtl } from '../ip.js';
import { CommandError, runCommandSync } from '../netns.js';
import type {
  HookStage,
  Host,
  HostDropReason,
  InjectOptions,
  InterfaceInfo,
  PacketContext,
  PacketHandler,
  PacketHook,
  RouteEntry,
  SendOptions,
  SendResult,
} from '../types.js';

/** The tc filter preference mipsec's redirect uses (and removes) on each interface's ingress. */
export const FILTER_PREF = 49_001;
const TUN_MTU = 3520;

/** The node config's interfaces do not match this namespace (message: 'interfaces: …' with the fix). */
export class InterfaceMismatchError extends Error {
  override name = 'InterfaceMismatchError';
}

export interface AttachInterface {
  name: string;
  address: string;
  prefixLength: number;
  /** A default route via this router is added when the kernel has none. */
  gateway?: string;
}

export interface AttachOptions {
  /** The host's name (the node's). */
  name: string;
  forwarding: boolean;
  interfaces: readonly AttachInterface[];
  /** Errors a role throws while handling a packet (default: rethrown). */
  onError?: (error: unknown) => void;
}

interface AddrInfo {
  ifname: string;
  operstate?: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

interface KernelRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
}

interface Route {
  prefix: Prefix;
  via?: number;
  iface: string;
  connected: boolean;
}

interface Iface {
  name: string;
  address: number;
  prefix: Prefix;
}

function ip(args: readonly string[]): string {
  return runCommandSync('ip', args);
}

/** A removal whose object may already be gone (with its device, or never made). */
function quietly(cmd: string, args: readonly string[]): void {
  try {
    runCommandSync(cmd, args);
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
  }
}

function prefixString(p: Prefix): string {
  return `${u32ToIp(p.network)}/${p.length}`;
}

export class AttachedHost implements Host {
  readonly name: string;
  readonly forwarding: boolean;
  private readonly ifaces = new Map<string, Iface>();
  private readonly routeTable: Route[] = [];
  private readonly hooks: Record<HookStage, PacketHook[]> = { input: [], output: [] };
  private readonly handlers: PacketHandler[] = [];
  private readonly drops: Record<HostDropReason, number> = { bad_ipv4: 0, no_route: 0, ttl_expired: 0, not_for_us: 0, unresolved: 0 };
  private readonly extraLocal = new Set<number>();
  private readonly proxied = new Set<string>();
  private readonly loops: { loop: IoLoop; engine: NativeEngine }[] = [];
  /** Undo steps for what was added to the kernel, run in reverse order by close(). */
  private readonly undo: { what: string; run: () => void }[] = [];
  private readonly addedRoutes = new Set<string>();
  private readonly onError: (error: unknown) => void;
  private readonly exitHook = () => this.close();
  private closed = false;

  /** Attaches to the named interfaces; on any failure, whatever it had added is removed again. */
  static attach(options: AttachOptions): AttachedHost {
    const host = new AttachedHost(options);
    try {
      host.setUp(options.interfaces);
    } catch (err) {
      host.close();
      throw err;
    }
    return host;
  }

  private constructor(options: AttachOptions) {
    this.name = options.name;
    this.forwarding = options.forwarding;
    this.onError = options.onError ?? ((error) => { throw error; });
    process.on('exit', this.exitHook);
  }

  private setUp(wanted: readonly AttachInterface[]): void {
    const present = JSON.parse(ip(['-j', 'addr', 'show']) || '[]') as AddrInfo[];
    for (const itf of wanted) {
      const found = present.find((p) => p.ifname === itf.name);
      if (!found) throw new InterfaceMismatchError(`interfaces: no interface named '${itf.name}' in this network namespace (it has: ${present.map((p) => p.ifname).join(', ')}); fix the name in the config or create the interface`);
      const has = (found.addr_info ?? []).filter((a) => a.family === 'inet');
      if (!has.some((a) => a.local === itf.address && a.prefixlen === itf.prefixLength)) {
        throw new InterfaceMismatchError(`interfaces: '${itf.name}' does not carry ${itf.address}/${itf.prefixLength} (it has: ${has.map((a) => `${a.local}/${a.prefixlen}`).join(', ') || 'no IPv4 address'}); add it with: ip addr add ${itf.address}/${itf.prefixLength} dev ${itf.name}`);
      }
    }
    for (const itf of wanted) this.redirect(itf);
    for (const itf of wanted) {
      const address = ipToU32(itf.address);
      const prefix = { network: (address & prefixMask(itf.prefixLength)) >>> 0, length: itf.prefixLength };
      this.ifaces.set(itf.name, { name: itf.name, address, prefix });
      this.routeTable.push({ prefix, iface: itf.name, connected: true });
    }
    // The kernel's routes through our interfaces are the host's routes too.
    const kernel = JSON.parse(ip(['-j', 'route', 'show', 'table', 'main']) || '[]') as KernelRoute[];
    for (const r of kernel) {
      // Connected routes ('proto kernel') are already the interfaces' own.
      if (!r.dev || !this.ifaces.has(r.dev) || r.protocol === 'kernel') continue;
      const prefix = parsePrefix(r.dst === 'default' ? '0.0.0.0/0' : r.dst.includes('/') ? r.dst : `${r.dst}/32`);
      this.routeTable.push({ prefix, via: r.gateway === undefined ? undefined : ipToU32(r.gateway), iface: r.dev, connected: false });
    }
    for (const itf of wanted) {
      if (itf.gateway && !this.lookupRoute('0.0.0.0')?.via) this.addRoute('0.0.0.0/0', { via: itf.gateway, iface: itf.name });
    }
  }

  /** tc ingress of `itf` → its own TUN, read by an I/O loop that punts every packet to receive(). */
  private redirect(itf: AttachInterface): void {
    const tun = `t-${itf.name}`.slice(0, 15);
    const engine = createEngine('native');
    if (!(engine instanceof NativeEngine)) throw new Error('real interfaces need the native addon (run npm rebuild)');
    let loop: IoLoop;
    try {
      loop = IoLoop.start({
        engine, tun: { name: tun, mtu: TUN_MTU, offload: false }, raw: true,
        onPunt: (packets: PuntedPacket[]) => {
          for (const p of packets) if (p.packet.length >= 20 && p.packet[16] < 224) this.guard(() => this.receive(p.packet.slice(), itf.name));
        },
      });
    } catch (err) {
      engine.close();
      throw err;
    }
    this.loops.push({ loop, engine });
    ip(['link', 'set', 'dev', tun, 'up']);
    const qdiscs = JSON.parse(runCommandSync('tc', ['-j', 'qdisc', 'show', 'dev', itf.name]) || '[]') as { kind: string }[];
    const filters = () => runCommandSync('tc', ['filter', 'show', 'dev', itf.name, 'ingress']);
    let ownQdisc = !qdiscs.some((q) => q.kind === 'ingress');
    if (ownQdisc) {
      runCommandSync('tc', ['qdisc', 'add', 'dev', itf.name, 'ingress']);
    } else if (filters().includes(`pref ${FILTER_PREF} `)) {
      // A filter left by a daemon that was killed (ours by its preference); with nothing else there, its qdisc was ours too.
      runCommandSync('tc', ['filter', 'del', 'dev', itf.name, 'ingress', 'pref', String(FILTER_PREF)]);
      ownQdisc = filters().trim() === '';
    }
    if (ownQdisc) this.undo.push({ what: `ingress qdisc on ${itf.name}`, run: () => quietly('tc', ['qdisc', 'del', 'dev', itf.name, 'ingress']) });
    runCommandSync('tc', ['filter', 'add', 'dev', itf.name, 'ingress', 'pref', String(FILTER_PREF), 'protocol', 'ip', 'u32', 'match', 'u32', '0', '0',
      'action', 'mirred', 'egress', 'redirect', 'dev', tun]);
    this.undo.push({ what: `tc filter on ${itf.name}`, run: () => quietly('tc', ['filter', 'del', 'dev', itf.name, 'ingress', 'pref', String(FILTER_PREF)]) });
  }

  /** Removes everything it added; idempotent and synchronous (also the process 'exit' path). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    process.off('exit', this.exitHook);
    const errors: string[] = [];
    // Filters first, so no packet is redirected into a TUN that is going away.
    for (const step of this.undo.splice(0).reverse()) {
      try {
        step.run();
      } catch (err) {
        errors.push(`${step.what}: ${(err as Error).message}`);
      }
    }
    for (const { loop, engine } of this.loops.splice(0)) {
      loop.stop();
      engine.close();
    }
    if (errors.length) throw new Error(`could not remove everything mipsec added: ${errors.join('; ')}`);
  }

  addInterface(name: string): void {
    throw new Error(`host '${this.name}': cannot add interface '${name}': a daemon uses the interfaces its node config names`);
  }

  moveInterface(name: string, _link: string, cidr: string): void {
    const iface = this.iface(name);
    const slash = cidr.indexOf('/');
    const address = ipToU32(cidr.slice(0, slash));
    const prefix = parsePrefix(`${u32ToIp(address)}/${cidr.slice(slash + 1)}`);
    for (const proxied of [...this.proxied].filter((p) => p.endsWith(` ${name}`))) this.setProxy(proxied.split(' ')[0], name, false);
    ip(['addr', 'flush', 'dev', name]);
    ip(['neigh', 'flush', 'dev', name]);
    for (let i = this.routeTable.length - 1; i >= 0; i--) {
      const r = this.routeTable[i];
      if (r.iface !== name) continue;
      this.routeTable.splice(i, 1);
      if (!r.connected) this.deleteKernelRoute(r.prefix);
    }
    ip(['addr', 'add', cidr, 'dev', name]);
    iface.address = address;
    iface.prefix = { network: prefix.network, length: prefix.length };
    this.routeTable.push({ prefix: iface.prefix, iface: name, connected: true });
  }

  interfaces(): readonly InterfaceInfo[] {
    return [...this.ifaces.values()].map((i) => ({ name: i.name, link: i.name, address: u32ToIp(i.address), prefixLength: i.prefix.length }));
  }

  addLocalAddress(address: string): void {
    const value = ipToU32(address);
    if (this.extraLocal.has(value)) return;
    ip(['addr', 'replace', `${address}/32`, 'dev', 'lo']);
    this.extraLocal.add(value);
    this.undo.push({ what: `local address ${address}`, run: () => this.removeLocalAddress(address) });
  }

  removeLocalAddress(address: string): void {
    if (!this.extraLocal.delete(ipToU32(address))) return;
    quietly('ip', ['addr', 'del', `${address}/32`, 'dev', 'lo']);
  }

  isLocal(address: string): boolean {
    return this.isLocalU32(ipToU32(address));
  }

  setProxy(address: string, ifaceName: string, enabled: boolean): void {
    this.iface(ifaceName);
    ipToU32(address);
    const key = `${address} ${ifaceName}`;
    if (enabled === this.proxied.has(key)) return;
    if (enabled) {
      ip(['neigh', 'replace', 'proxy', address, 'dev', ifaceName]);
      this.proxied.add(key);
      this.undo.push({ what: `proxy ARP for ${address}`, run: () => this.setProxy(address, ifaceName, false) });
    } else {
      this.proxied.delete(key);
      quietly('ip', ['neigh', 'del', 'proxy', address, 'dev', ifaceName]);
    }
  }

  addRoute(prefixText: string, route: { via?: string; iface?: string }): void {
    const prefix = parsePrefix(prefixText);
    const via = route.via === undefined ? undefined : ipToU32(route.via);
    let ifaceName = route.iface;
    if (ifaceName === undefined) {
      if (via === undefined) throw new Error(`host '${this.name}': route ${prefixText} needs 'via' (a next-hop router) or 'iface'`);
      ifaceName = [...this.ifaces.values()].find((i) => prefixContains(i.prefix, via))?.name;
      if (ifaceName === undefined) throw new Error(`host '${this.name}': route ${prefixText} via ${route.via}: no interface is on that next hop's subnet`);
    } else {
      this.iface(ifaceName);
    }
    this.removeRoute(prefixText);
    const text = prefixString(prefix);
    ip(['route', 'replace', text, ...(route.via ? ['via', route.via] : []), 'dev', ifaceName]);
    this.routeTable.push({ prefix, via, iface: ifaceName, connected: false });
    if (!this.addedRoutes.has(text)) {
      this.addedRoutes.add(text);
      this.undo.push({ what: `route ${text}`, run: () => this.addedRoutes.has(text) && this.deleteKernelRoute(prefix) });
    }
  }

  removeRoute(prefixText: string): void {
    const prefix = parsePrefix(prefixText);
    const i = this.routeTable.findIndex((r) => !r.connected && r.prefix.network === prefix.network && r.prefix.length === prefix.length);
    if (i < 0) return;
    this.routeTable.splice(i, 1);
    this.deleteKernelRoute(prefix);
  }

  private deleteKernelRoute(prefix: Prefix): void {
    this.addedRoutes.delete(prefixString(prefix));
    quietly('ip', ['route', 'del', prefixString(prefix)]);
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
      const ctx: PacketContext = { host: this.name, time: Date.now() };
      if (this.hooks.output.some((hook) => hook(packet, ctx) === 'consumed')) return { ok: true };
    }
    if (this.isLocalU32(check.header.dst)) {
      const copy = packet.slice();
      setImmediate(() => this.guard(() => this.deliver(copy, { host: this.name, time: Date.now() })));
      return { ok: true };
    }
    return this.route(packet, check.header.dst);
  }

  inject(datagram: Uint8Array, options: InjectOptions = {}): void {
    if (options.iface !== undefined) this.iface(options.iface);
    const copy = datagram.slice();
    setImmediate(() => this.guard(() => this.receive(copy, options.iface, options.bypassHooks)));
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

  private guard(run: () => void): void {
    if (this.closed) return;
    try {
      run();
    } catch (error) {
      this.onError(error);
    }
  }

  private receive(datagram: Uint8Array, ifaceName: string | undefined, bypassHooks = false): void {
    const check = parseIpv4(datagram, 0, datagram.length, { allowFragments: true });
    if (!check.ok) {
      this.drop('bad_ipv4');
      return;
    }
    const packet = datagram.subarray(0, check.header.totalLength);
    const ctx: PacketContext = { host: this.name, iface: ifaceName, link: ifaceName, time: Date.now() };
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
    if (!this.lookup(dst)) return this.drop('no_route');
    if (this.closed || this.loops.length === 0) return this.drop('unresolved');
    this.loops[0].loop.inject([{ packet, via: 'raw' }]);
    return { ok: true };
  }

  private lookup(dst: number): Route | undefined {
    let best: Route | undefined;
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

  private iface(name: string): Iface {
    const iface = this.ifaces.get(name);
    if (!iface) throw new Error(`host '${this.name}' has no interface '${name}' (has: ${[...this.ifaces.keys()].join(', ') || 'none'})`);
    return iface;
  }

  private drop(reason: HostDropReason): { ok: false; reason: HostDropReason } {
    this.drops[reason]++;
    return { ok: false, reason };
  }
}

function toRouteEntry(route: Route): RouteEntry {
  const entry: RouteEntry = { prefix: prefixString(route.prefix), iface: route.iface };
  if (route.via !== undefined) entry.via = u32ToIp(route.via);
  return entry;
}
