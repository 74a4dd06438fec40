/*
 * NamespaceHost: what every LinuxNetwork host (./network.ts) does in its namespace `<prefix>-<host>`,
 * whichever stack carries its packets — a role host's I/O loops (LinuxHost) or the kernel's own (PlainHost,
 * ./plain-host.ts):
 *
 *   interfaces      a veth pair per interface: `<name>` in the host (address via `ip addr`), its peer a port of
 *                   the link's bridge in the switch namespace. moveInterface moves the port to the other bridge,
 *                   replaces the address, removes the routes through the interface and flushes stale neighbour
 *                   entries for the address on the other hosts.
 *   routes          the JS route table (HostCore's) is mirrored into the kernel's main table (`ip route replace`).
 *   addLocalAddress an address on lo.
 *   setProxy        `ip neigh add proxy ADDRESS dev IFACE` (and a route to lo, without which the kernel proxies
 *                   nothing); the other hosts on the link forget their entry for ADDRESS (in place of the
 *                   gratuitous ARP of RFC 5944 §4.6).
 */
import { ipToU32, u32ToIp, type Prefix } from '../../wire/addr.js';
import { HostCore, parseCidr, prefixString, type CoreInterface } from '../host-core.js';
import { CommandError, type NetnsSession } from '../netns.js';
import type { CapturedPacket, Clock, Link } from '../types.js';

/** A bridge port in the switch namespace: the far end of a host interface's veth. */
export interface Port {
  /** Bridge port name in the switch namespace. */
  name: string;
  host: NamespaceHost;
  iface: string;
  mac: string;
  link: Link & { readonly ports: Set<Port>; record(frame: CapturedPacket): void };
}

/** What a host needs of its network (LinuxNetwork). */
export interface NamespaceWorld {
  readonly session: NetnsSession;
  readonly clock: Clock;
  readonly isClosed: boolean;
  onError(error: unknown): void;
  /** A veth pair: `iface` in the host's namespace, its peer a port of `link`'s bridge. */
  attach(host: NamespaceHost, iface: string, link: string): Port;
  move(port: Port, link: string): void;
  /** The hosts on `port`'s link (except `except`) forget their neighbour entry for `address`. */
  forgetNeighbour(link: Port['link'], address: string, except: NamespaceHost): void;
}

export interface NamespaceInterface extends CoreInterface {
  port: Port;
}

export abstract class NamespaceHost<I extends NamespaceInterface = NamespaceInterface> extends HostCore<I> {
  private readonly proxied = new Map<string, Set<string>>();

  constructor(
    protected readonly world: NamespaceWorld,
    name: string,
    readonly ns: string,
    forwarding: boolean,
  ) {
    super(name, forwarding, world.clock);
  }

  /** Extra `ip route` words for every route of this host (e.g. an MTU). */
  protected routeWords(): string[] {
    return [];
  }

  /** The veth and its address; the world's own setup of the interface follows (see addInterface). */
  protected attachInterface(
    name: string,
    link: string,
    cidr: string,
    linkMtu: number,
  ): { port: Port; address: number; prefix: Prefix } {
    this.assertNewInterface(name);
    const { address, prefix } = parseCidr(cidr);
    const s = this.world.session;
    const port = this.world.attach(this, name, link);
    s.execSync(this.ns, 'sysctl', ['-q', '-w', `net.ipv4.neigh.${name}.proxy_delay=0`]);
    s.ipSync(this.ns, ['addr', 'add', cidr, 'dev', name]);
    s.ipSync(this.ns, ['link', 'set', 'dev', name, 'mtu', String(linkMtu), 'up']);
    return { port, address, prefix };
  }

  moveInterface(name: string, link: string, cidr: string): void {
    const iface = this.iface(name);
    const { address, prefix } = parseCidr(cidr);
    const s = this.world.session;
    for (const proxied of [...(this.proxied.get(name) ?? [])]) this.setProxy(proxied, name, false);
    this.world.move(iface.port, link);
    s.ipSync(this.ns, ['addr', 'flush', 'dev', name]);
    s.ipSync(this.ns, ['neigh', 'flush', 'dev', name]);
    // Routes through the old subnet go before the new address brings its own connected route.
    this.removeRoutesThrough(name);
    s.ipSync(this.ns, ['addr', 'add', cidr, 'dev', name]);
    this.readdress(iface, address, prefix);
    this.connectedRouteAdded(name, cidr);
    this.world.forgetNeighbour(iface.port.link, u32ToIp(address), this);
  }

  setProxy(address: string, ifaceName: string, enabled: boolean): void {
    const iface = this.iface(ifaceName);
    ipToU32(address);
    const set = this.proxied.get(ifaceName) ?? new Set<string>();
    this.proxied.set(ifaceName, set);
    if (enabled === set.has(address)) return;
    if (enabled) set.add(address);
    else set.delete(address);
    // The kernel proxies only for an address routed out of another device than the one asked on.
    if (enabled) {
      this.world.session.ipSync(this.ns, ['neigh', 'replace', 'proxy', address, 'dev', ifaceName]);
      this.world.session.ipSync(this.ns, ['route', 'replace', `${address}/32`, 'dev', 'lo']);
    } else {
      this.quietly(['neigh', 'del', 'proxy', address, 'dev', ifaceName]);
      this.quietly(['route', 'del', `${address}/32`, 'dev', 'lo']);
    }
    this.world.forgetNeighbour(iface.port.link, address, this);
  }

  /** Applications can bind it: an address on lo. */
  protected override localAddressAdded(address: string): void {
    this.world.session.ipSync(this.ns, ['addr', 'replace', `${address}/32`, 'dev', 'lo']);
  }

  protected override localAddressRemoved(address: string): void {
    this.world.session.ipSync(this.ns, ['addr', 'del', `${address}/32`, 'dev', 'lo']);
  }

  /** The kernel's main table mirrors the JS routes. */
  protected override routeAdded(prefix: Prefix, via: string | undefined, iface: string): void {
    this.world.session.ipSync(this.ns, [
      'route',
      'replace',
      prefixString(prefix),
      ...(via ? ['via', via] : []),
      'dev',
      iface,
      ...this.routeWords(),
    ]);
  }

  protected override routeRemoved(prefix: Prefix): void {
    this.quietly(['route', 'del', prefixString(prefix)]);
  }

  /** An interface got an address (and the kernel its connected route): a world that sets route words rewrites it. */
  protected connectedRouteAdded(iface: string, cidr: string): void {
    const words = this.routeWords();
    if (words.length === 0) return;
    const { address, prefix } = parseCidr(cidr);
    this.world.session.ipSync(this.ns, [
      'route',
      'replace',
      prefixString(prefix),
      'dev',
      iface,
      'proto',
      'kernel',
      'scope',
      'link',
      'src',
      u32ToIp(address),
      ...words,
    ]);
  }

  /** An `ip` removal whose object may already be gone with an address or a flushed table. */
  protected quietly(args: string[]): void {
    try {
      this.world.session.ipSync(this.ns, args);
    } catch (err) {
      if (!(err instanceof CommandError && /No such|not found|Cannot find/i.test(err.stderr))) throw err;
    }
  }

  protected override defer(run: () => void): void {
    setImmediate(() => this.guard(run));
  }

  protected override linkName(iface: I): string {
    return iface.port.link.name;
  }

  protected guard(run: () => void): void {
    if (this.world.isClosed) return;
    try {
      run();
    } catch (error) {
      this.world.onError(error);
    }
  }
}
