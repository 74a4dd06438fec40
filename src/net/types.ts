/*
 * The Network interface: everything a role (SGW, SMN, HA) sees of the network it runs on.
 *
 * Two implementations share it: MemoryNetwork (in-process links on a virtual clock, the embedded
 * default) and, later, a Linux one (TUN + raw sockets in network namespaces). Roles must use
 * nothing else, so either can run them unchanged.
 *
 * Model
 *   Network   a set of hosts and links, plus the clock that drives all timers.
 *   Host      a node with interfaces, local addresses, a routing table (longest prefix match) and,
 *             when `forwarding`, IPv4 forwarding with TTL decrement. Packets are raw IPv4
 *             datagrams (Uint8Array, header included); the network never rewrites a packet except
 *             for the TTL (and its checksum) when a router forwards it.
 *   Interface a named attachment of a host to a link with one address/prefix ('10.0.0.1/16').
 *             moveInterface() re-attaches it elsewhere with a new address: a handover.
 *   Link      'p2p' (two ends, no address resolution) or 'multi' (a LAN: the frame goes to the
 *             interface that owns the next-hop address, or that proxies for it — proxy ARP, which
 *             a home agent uses to capture its away mobile nodes' packets). Every link has a
 *             capture tap recording each frame with time, link name, sender, receiver and fate.
 *
 * Packet path in a host
 *   send(d)        locally originated: output hooks → route lookup → link.
 *   from a link    input hooks → local address? deliver to handlers : forwarding? TTL−1, route,
 *                  link : drop ('not_for_us').
 *   inject(d)      the input path for a datagram the host made itself (e.g. after decapsulation).
 *   A hook returns 'consumed' to take the packet (the role then sends whatever it wants) or
 *   'pass' to let the host carry on. Hooks see packets for any destination, so a router hook is
 *   where an SGW or HA does its work. `bypassHooks` on send/inject avoids seeing one's own output.
 *
 * Every packet the host drops is counted by reason (counters()).
 * Addresses are dotted strings at this interface; prefixes are 'a.b.c.d/len'.
 */
import type { InjectPacket } from '../engine/io.js';
import type { NativeEngine } from '../engine/native.js';
import type { ReasonName } from '../engine/types.js';

/**
 * Time in milliseconds since the Unix epoch: wall-clock time on a real network, virtual time
 * on MemoryNetwork (starting at its `startMs`). Roles take protocol timestamps from it too.
 */
export interface Clock {
  now(): number;
  setTimer(delayMs: number, run: () => void): Timer;
}

export interface Timer {
  cancel(): void;
}

export type LinkKind = 'p2p' | 'multi';

export interface LinkOptions {
  /** Default 'multi'. */
  kind?: LinkKind;
  /** One-way delay of every frame, default 1 ms. */
  latencyMs?: number;
}

/**
 * Loss injection: a rate in [0, 1) drawn from a seeded generator, or a predicate per frame (index counts frames sent on
 * the link).
 */
export type LossModel = number | ((packet: Uint8Array, index: number) => boolean);

export type FrameFate = 'delivered' | 'lost' | 'unresolved';

export interface CapturedPacket {
  /** Clock time the frame entered the link. */
  time: number;
  link: string;
  /** 'host/interface' of the sender. */
  from: string;
  /** 'host/interface' of the receiver; undefined when unresolved. */
  to?: string;
  fate: FrameFate;
  /** A copy of the datagram as it crossed the link. */
  packet: Uint8Array;
}

export interface Link {
  readonly name: string;
  readonly kind: LinkKind;
  readonly latencyMs: number;
  /** Loss injection; `undefined` turns it off. `seed` makes a rate reproducible (default 1). */
  setLoss(loss: LossModel | undefined, seed?: number): void;
  /** Every frame that entered this link, in order. */
  captures(): readonly CapturedPacket[];
  /** Forgets the recorded frames (e.g. between two lab cases). */
  clearCaptures(): void;
  /** Live tap: called for each frame as it enters the link. Returns a function that removes it. */
  tap(listener: (frame: CapturedPacket) => void): () => void;
}

export interface InterfaceInfo {
  name: string;
  link: string;
  address: string;
  prefixLength: number;
}

export interface RouteEntry {
  /** 'a.b.c.d/len' */
  prefix: string;
  /** Next-hop router on the interface's link; absent for a connected route. */
  via?: string;
  iface: string;
}

export interface PacketContext {
  host: string;
  /** Interface the packet arrived on; undefined for local delivery of the host's own packets. */
  iface?: string;
  link?: string;
  time: number;
}

export type HookResult = 'consumed' | 'pass';
export type PacketHook = (packet: Uint8Array, ctx: PacketContext) => HookResult;
export type PacketHandler = (packet: Uint8Array, ctx: PacketContext) => void;
export type HookStage = 'input' | 'output';

export type HostDropReason = 'bad_ipv4' | 'no_route' | 'ttl_expired' | 'not_for_us' | 'unresolved' | 'too_big';

export type SendResult = { ok: true } | { ok: false; reason: HostDropReason };

export interface SendOptions {
  /** Skip this host's hooks of the stage concerned (a role re-sending its own transformed packet). */
  bypassHooks?: boolean;
  /**
   * A sealed packet: the start of the datagram it carries. A world whose link refuses the packet as too big
   * answers that datagram's sender with ICMP 3/4 if it has DF (src/net/linux/attached.ts); others ignore it.
   */
  carries?: Uint8Array;
}

export interface InjectOptions extends SendOptions {
  /** Interface to present as the arrival interface. */
  iface?: string;
}

export interface Host {
  readonly name: string;
  readonly forwarding: boolean;
  /**
   * The native data path of a Linux host whose interfaces are read by I/O loops (LinuxNetwork role hosts,
   * AttachedHost daemons): the policy table of each interface and the punts that carry engine context.
   * Undefined on MemoryNetwork hosts and on LinuxNetwork's plain (kernel-stack) hosts.
   */
  readonly dataPath?: HostDataPath;

  /** Attaches a new interface with 'a.b.c.d/len' to a link, adding its connected route. */
  addInterface(name: string, link: string, cidr: string): void;
  /**
   * Moves an interface to another link with a new address: its connected route follows, other routes through it are
   * removed.
   */
  moveInterface(name: string, link: string, cidr: string): void;
  interfaces(): readonly InterfaceInfo[];

  /** An address that is local without being on an interface (a mobile node's home address while away). */
  addLocalAddress(address: string): void;
  removeLocalAddress(address: string): void;
  isLocal(address: string): boolean;

  /** Answer on `iface`'s link for `address` (proxy ARP), or stop with `enabled` false. */
  setProxy(address: string, iface: string, enabled: boolean): void;

  /** Adds or replaces the route for `prefix`. Without `iface` it is the interface whose subnet holds `via`. */
  addRoute(prefix: string, route: { via?: string; iface?: string }): void;
  removeRoute(prefix: string): void;
  routes(): readonly RouteEntry[];
  /** Longest prefix match. */
  lookupRoute(destination: string): RouteEntry | undefined;
  /** The address of the interface the route to `destination` leaves by. */
  sourceAddressFor(destination: string): string | undefined;

  send(datagram: Uint8Array, options?: SendOptions): SendResult;
  inject(datagram: Uint8Array, options?: InjectOptions): void;
  addHook(stage: HookStage, hook: PacketHook): () => void;
  /** Packets addressed to a local address that no hook consumed. */
  onDeliver(handler: PacketHandler): () => void;

  counters(): Readonly<Record<HostDropReason, number>>;

  /**
   * Opens UDP `port` on the host's addresses for its onDeliver handlers (an application's server port). A host on
   * its kernel's own stack (LinuxNetwork `plain` hosts) answers a datagram to a port no socket holds with ICMP port
   * unreachable, so a lab application opens its ports first; hosts whose local delivery is JS's ignore it.
   */
  listenUdp?(port: number): void;
}

/** A punt of the I/O loop that carries engine context (see HostDataPath.onEnginePunt). */
export interface EnginePunt {
  packet: Uint8Array;
  reason: ReasonName;
  /** The SA that had authenticated the packet when it was punted, 0 if none. */
  sa: number;
  /** The interface the packet arrived on (LinuxNetwork: APPS_PORT for the host's applications' TUN). */
  iface: string;
}

/** A Linux host's interface loops on its node's engine (CONTRACT: roles are table compilers). */
export interface HostDataPath {
  /** The policy table id OUTBOUND uses for packets arriving on `iface` (stable for the host's lifetime, never 0). */
  tableOf(iface: string): number;
  /**
   * Punts that carry engine context (SA ≠ 0, or reasons nexthop_plain, no_route, relay_denied, selector,
   * deliver_local, unknown_key, not_ipsec after a peel) go to this handler instead of the input hooks. Returns its
   * removal. While no handler is registered they take the input path like every other punt.
   */
  onEnginePunt(handler: (punt: EnginePunt) => void): () => void;
  /**
   * Hands packets back to the loop of `iface`, to go through its tables as `via` says (e.g. a datagram the engine
   * held back for a new key, once the tables name it). False when that loop is not running.
   */
  inject(iface: string, packets: readonly InjectPacket[]): boolean;
  /**
   * The address of the host's applications' port (an SMN daemon's home address on its application TUN), if it has
   * one: the kernel owns it and routes what it sends from it into that port (the role's tables seal it), so a
   * DELIVER for it is the kernel's to hand to its sockets, not the role's.
   */
  applicationAddress?(): string | undefined;
}

export interface HostOptions {
  /** Forward packets not addressed to this host (a router, SGW). Default false. */
  forwarding?: boolean;
  /**
   * The native engine of the role that runs on this host: a Linux host starts its interface loops on it (each
   * interface's table dataPath.tableOf(iface), DELIVERs routed by the kernel), so what the role compiles into
   * its tables never reaches JS. Absent: the loops run an empty engine that punts everything. MemoryNetwork
   * ignores it.
   */
  engine?: NativeEngine;
  /**
   * With `engine`, LinuxNetwork role hosts: the home agent's RFC 2003 tunnel (`from` the HA, `to` the home address,
   * which the host's kernel owns while away) that its interface loops peel for the kernel once an End-End SA has
   * opened it (IoLoopOptions.kernelTunnel), instead of punting it to the role; with `protocol`, only datagrams of
   * that IP protocol. MemoryNetwork ignores it.
   */
  kernelTunnel?: { from: string; to: string; protocol?: number };
  /**
   * A host without a role (a correspondent, a router, an application server). LinuxNetwork runs it on its
   * kernel's own stack: kernel forwarding, routes, ARP, ICMP and sockets; no hooks and no inject; send() and
   * onDeliver() carry UDP through real sockets (listenUdp). MemoryNetwork ignores it. Default false.
   */
  plain?: boolean;
}

export interface Network {
  readonly clock: Clock;
  addHost(name: string, options?: HostOptions): Host;
  addLink(name: string, options?: LinkOptions): Link;
  host(name: string): Host;
  link(name: string): Link;
  hosts(): readonly Host[];
  links(): readonly Link[];
}
