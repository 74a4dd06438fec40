// The home agent (RFC 5944, co-located care-of addresses; DESIGN §2): registrations on UDP 434,
// a binding table with lifetimes on the network's clock, proxy interception of packets for
// registered-away home addresses, IP-in-IP (RFC 2003) to the care-of address, and decapsulation
// of what mobile nodes reverse-tunnel to it. No IPsec: the home SGW does that (draft §2.1).
// On a host with a native data path the bindings are also compiled into the engine's tables (./tables.ts): the I/O
// loops tunnel to the care-of address and open the reverse tunnels without JS; what they do not cover (a fragment of
// a reverse tunnel, a TTL to answer) still comes to handle() here.
import { Batch, createEngine, Op, reasonName, Verdict, type Engine, type Policy } from '../../engine/index.js';
import { decrementTtl } from '../../net/ip.js';
import type { Clock, Host, Timer } from '../../net/types.js';
import { ipToU32, readIp, u32ToIp } from '../../wire/addr.js';
import { isIpipLoop, parseIpip } from '../../wire/ipip.js';
import { IpProto, parseIpv4, type Ipv4Header } from '../../wire/ipv4.js';
import {
  decodeRequest,
  encodeReply,
  idHigh,
  idLow,
  LIFETIME_INFINITE,
  makeId,
  MIP_PORT,
  MipType,
  ntpFromUnixMs,
  ReplyCode,
  REQUEST_FIXED_BYTES,
  RequestFlag,
  verifyMnHaAuth,
  type MnHaKey,
  type RegistrationRequest,
} from '../../wire/mobileip.js';
import { buildUdpDatagram, parseUdpDatagram } from '../../wire/udp.js';
import type { BindingRecord, BindingStore } from './journal.js';
import { HaTables } from './tables.js';

/** RFC 2003 §5.1 / RFC 3024: codes for encapsulations we do not offer. */
const CODE_ENCAPSULATION_UNAVAILABLE = 139;
const DEFAULT_MAX_LIFETIME_S = 1800;
/** RFC 5944 §5.7: default timestamp tolerance. */
const DEFAULT_REPLAY_TOLERANCE_S = 7;

export interface MobileNodeEntry {
  homeAddress: string;
  /** MN-HA security association: SPI and HMAC-MD5 key. The HA keeps its own copy and zeroes it on close(). */
  auth: MnHaKey;
}

export interface HomeAgentOptions {
  host: Host;
  clock: Clock;
  /** The HA's address: the Home Agent field of registrations and the outer source of its tunnels. */
  address: string;
  /** Interface on the home link, where the HA answers for away mobile nodes (proxy ARP). */
  homeInterface: string;
  mobileNodes: readonly MobileNodeEntry[];
  /** Longest lifetime granted, seconds (default 1800). */
  maxLifetime?: number;
  /** Identification timestamp tolerance, seconds (default 7). */
  replayToleranceS?: number;
  /** Most bindings held at once; further registrations get 130 (default: unlimited). */
  maxBindings?: number;
  /** Administrative policy: false denies a registration with 129. */
  authorize?: (homeAddress: string, careOf: string) => boolean;
  /**
   * Durable bindings and replay state (RFC 5944 §5.7): loaded at construction, written before each
   * accepting reply leaves, so a restart or a crash forgets no acknowledged registration.
   */
  store?: BindingStore;
  /**
   * The engine whose IPIP_ENCAP / IPIP_DECAP ops build and open the RFC 2003 tunnels (docs/engine.md §2); default
   * an engine of the HA's own (the TypeScript one), closed with it. When the host has a data path its I/O loops run
   * this engine (the node's), and the HA compiles one `tunnel` policy per binding (and one `detunnel` for reverse
   * tunnels) into its interfaces' tables.
   */
  engine?: Engine;
}

export interface Binding {
  homeAddress: string;
  careOf: string;
  /** Granted lifetime in seconds. */
  lifetime: number;
  /** Clock time (ms) the binding expires at. */
  expiresAt: number;
}

export type HomeAgentEvent =
  | { type: 'reply'; homeAddress: string; code: number; lifetime: number }
  | { type: 'binding'; binding: Binding }
  | { type: 'deregistered'; homeAddress: string }
  | { type: 'expired'; homeAddress: string };

/** Why the HA dropped a packet without an answer; counted in counters(). */
export type HomeAgentDrop =
  | 'bad_udp'
  | 'malformed_request'
  | 'unknown_mobile_node'
  | 'loop'
  | 'ttl_expired'
  | 'bad_tunnel'
  | 'untrusted_tunnel'
  /** The binding store could not write an accepted registration: answered 130 instead. */
  | 'store_failed';

export interface HomeAgentCounters {
  replies: Record<number, number>;
  drops: Record<HomeAgentDrop, number>;
  tunnelled: number;
  decapsulated: number;
}

interface MobileNodeState {
  homeAddress: number;
  auth: MnHaKey;
  /** Highest identification accepted so far; later requests must exceed it (RFC 5944 §5.7). */
  lastAcceptedId: bigint;
  binding?: { careOf: number; lifetime: number; expiresAt: number; timer?: Timer };
}

export class HomeAgent {
  private readonly host: Host;
  private readonly clock: Clock;
  private readonly address: number;
  private readonly homeInterface: string;
  private readonly maxLifetime: number;
  private readonly toleranceS: number;
  private readonly maxBindings: number;
  private readonly authorize?: (homeAddress: string, careOf: string) => boolean;
  private readonly store?: BindingStore;
  private readonly nodes = new Map<number, MobileNodeState>();
  private readonly listeners = new Set<(event: HomeAgentEvent) => void>();
  private readonly removeHook: () => void;
  private readonly engine: Engine;
  private readonly ownEngine: boolean;
  private readonly tables: HaTables;
  private closed = false;
  /** One datagram at a time: the HA answers from its input hook, synchronously. */
  private readonly batch = new Batch({ capacity: 1, slotSize: 4096, headroom: 64 });
  private readonly stats: HomeAgentCounters = {
    replies: {},
    drops: {
      bad_udp: 0,
      malformed_request: 0,
      unknown_mobile_node: 0,
      loop: 0,
      ttl_expired: 0,
      bad_tunnel: 0,
      untrusted_tunnel: 0,
      store_failed: 0,
    },
    tunnelled: 0,
    decapsulated: 0,
  };

  constructor(options: HomeAgentOptions) {
    this.host = options.host;
    this.clock = options.clock;
    this.address = ipToU32(options.address);
    this.homeInterface = options.homeInterface;
    this.maxLifetime = options.maxLifetime ?? DEFAULT_MAX_LIFETIME_S;
    if (!Number.isInteger(this.maxLifetime) || this.maxLifetime < 1 || this.maxLifetime >= LIFETIME_INFINITE) {
      throw new RangeError(`home agent maxLifetime must be an integer 1..65534 seconds, got ${this.maxLifetime}`);
    }
    this.toleranceS = options.replayToleranceS ?? DEFAULT_REPLAY_TOLERANCE_S;
    this.maxBindings = options.maxBindings ?? Infinity;
    this.authorize = options.authorize;
    this.store = options.store;
    this.ownEngine = options.engine === undefined;
    this.engine = options.engine ?? createEngine('ts');
    if (!this.host.isLocal(options.address))
      throw new Error(
        `home agent address ${options.address} is not an address of host '${this.host.name}' (add it to an ` +
          `interface first)`,
      );
    if (!this.host.interfaces().some((i) => i.name === options.homeInterface)) {
      throw new Error(
        `home agent homeInterface '${options.homeInterface}' is not an interface of host '${this.host.name}'`,
      );
    }
    for (const mn of options.mobileNodes) {
      const homeAddress = ipToU32(mn.homeAddress);
      if (this.nodes.has(homeAddress)) throw new Error(`home agent: mobile node ${mn.homeAddress} is listed twice`);
      this.nodes.set(homeAddress, {
        homeAddress,
        auth: { spi: mn.auth.spi, key: mn.auth.key.slice() },
        lastAcceptedId: 0n,
      });
    }
    this.tables = new HaTables(this.engine, () => this.tableContext());
    this.restored = this.restore();
    this.tables.publish();
    this.removeHook = this.host.addHook('input', (packet) => (this.handle(packet) ? 'consumed' : 'pass'));
  }

  /** What the store gave back at start: bindings still valid, and those whose lifetime ran out meanwhile. */
  readonly restored: { bindings: number; expired: number };

  bindings(): Binding[] {
    const out: Binding[] = [];
    for (const node of this.nodes.values()) if (node.binding) out.push(this.describeBinding(node));
    return out;
  }

  counters(): HomeAgentCounters {
    return {
      replies: { ...this.stats.replies },
      drops: { ...this.stats.drops },
      tunnelled: this.stats.tunnelled,
      decapsulated: this.stats.decapsulated,
    };
  }

  on(listener: (event: HomeAgentEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The policies the HA has compiled into its engine's tables (empty without a data path). */
  compiledPolicies(): Policy[] {
    return this.tables.policies();
  }

  /**
   * Stops intercepting, drops every binding (the store keeps them) and the policies compiled from them, and zeroes the
   * MN-HA keys.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.removeHook();
    this.tables.clear();
    this.store?.close();
    for (const node of this.nodes.values()) {
      this.removeBinding(node);
      node.auth.key.fill(0);
    }
    this.nodes.clear();
    if (this.ownEngine) this.engine.close();
  }

  /** The input hook: true when the packet was the HA's to handle. */
  private handle(packet: Uint8Array): boolean {
    const ip = parseIpv4(packet, 0);
    if (!ip.ok) return false;
    const { dst, protocol } = ip.header;
    if (dst === this.address) {
      if (protocol === IpProto.UDP) return this.handleUdp(packet);
      if (protocol === IpProto.IPIP) {
        this.decapsulate(packet);
        return true;
      }
      return false;
    }
    const node = this.nodes.get(dst);
    if (!node?.binding) return false;
    this.tunnel(packet, ip.header, node.binding.careOf);
    return true;
  }

  private handleUdp(packet: Uint8Array): boolean {
    const udp = parseUdpDatagram(packet);
    if (!udp.ok) {
      this.stats.drops.bad_udp++;
      return true;
    }
    if (udp.udp.dstPort !== MIP_PORT) return false;
    this.handleRequest(udp.udp.payload, udp.udp.src, udp.udp.srcPort);
    return true;
  }

  /** RFC 5944 §3.8.2: authenticate first, then identification, then the rest. */
  private handleRequest(payload: Uint8Array, replyTo: number, replyPort: number): void {
    const parsed = decodeRequest(payload);
    if (!parsed.ok) {
      // A fixed part we can read names the MN, whose key can still authenticate a 134.
      const node =
        payload.length >= REQUEST_FIXED_BYTES && payload[0] === MipType.REQUEST
          ? this.nodes.get(readIp(payload, 4))
          : undefined;
      if (node)
        this.reply(
          node,
          replyTo,
          replyPort,
          ReplyCode.POORLY_FORMED_REQUEST,
          0,
          new DataView(payload.buffer, payload.byteOffset).getBigUint64(16),
        );
      else this.stats.drops.malformed_request++;
      return;
    }
    const request = parsed.message;
    const node = this.nodes.get(request.homeAddress);
    if (!node) {
      this.stats.drops.unknown_mobile_node++;
      return;
    }
    if (!verifyMnHaAuth(payload, parsed.mnHaAuth, node.auth).ok) {
      this.reply(node, replyTo, replyPort, ReplyCode.MN_AUTH_FAILED, 0, request.identification);
      return;
    }
    const nowNtp = ntpFromUnixMs(this.clock.now());
    const skewS = Math.abs(idHigh(request.identification) - idHigh(nowNtp));
    if (skewS > this.toleranceS || request.identification <= node.lastAcceptedId) {
      // High half = our clock, low half copied, so the MN can resynchronise (RFC 5944 §5.7).
      this.reply(
        node,
        replyTo,
        replyPort,
        ReplyCode.ID_MISMATCH,
        0,
        makeId(idHigh(nowNtp), idLow(request.identification)),
      );
      return;
    }
    const code = this.admissionCode(request, node);
    if (code !== ReplyCode.ACCEPTED) {
      this.reply(node, replyTo, replyPort, code, 0, request.identification);
      return;
    }
    const deregistering = request.lifetime === 0 || request.careOf === request.homeAddress;
    const lifetime =
      request.lifetime === LIFETIME_INFINITE ? this.maxLifetime : Math.min(request.lifetime, this.maxLifetime);
    const registeredAt = this.clock.now();
    if (
      !this.persisted(
        node,
        request.identification,
        deregistering ? undefined : { careOf: request.careOf, lifetime, registeredAt },
      )
    ) {
      this.reply(node, replyTo, replyPort, ReplyCode.INSUFFICIENT_RESOURCES, 0, request.identification);
      return;
    }
    node.lastAcceptedId = request.identification;
    if (deregistering) {
      const wasAway = node.binding !== undefined;
      this.removeBinding(node);
      this.reply(node, replyTo, replyPort, ReplyCode.ACCEPTED, 0, request.identification);
      if (wasAway) this.emit({ type: 'deregistered', homeAddress: u32ToIp(node.homeAddress) });
      return;
    }
    this.setBinding(node, request.careOf, lifetime, registeredAt);
    // We keep one binding per MN: a request for simultaneous bindings is accepted with code 1.
    const accepted = request.flags & RequestFlag.S ? ReplyCode.ACCEPTED_NO_SIMULTANEOUS : ReplyCode.ACCEPTED;
    this.reply(node, replyTo, replyPort, accepted, lifetime, request.identification);
    this.emit({ type: 'binding', binding: this.describeBinding(node) });
  }

  private admissionCode(request: RegistrationRequest, node: MobileNodeState): number {
    if (request.homeAgent !== this.address) return ReplyCode.UNKNOWN_HA_ADDRESS;
    const deregistering = request.lifetime === 0 || request.careOf === request.homeAddress;
    if (deregistering) return ReplyCode.ACCEPTED;
    // A care-of address of 0.0.0.0 or of the HA itself would make the tunnel loop.
    if (request.careOf === 0 || request.careOf === this.address) return ReplyCode.POORLY_FORMED_REQUEST;
    if (request.flags & (RequestFlag.M | RequestFlag.G)) return CODE_ENCAPSULATION_UNAVAILABLE;
    if (this.authorize && !this.authorize(u32ToIp(request.homeAddress), u32ToIp(request.careOf)))
      return ReplyCode.ADMIN_PROHIBITED;
    if (!node.binding && this.bindings().length >= this.maxBindings) return ReplyCode.INSUFFICIENT_RESOURCES;
    return ReplyCode.ACCEPTED;
  }

  private reply(
    node: MobileNodeState,
    to: number,
    port: number,
    code: number,
    lifetime: number,
    identification: bigint,
  ): void {
    const payload = encodeReply(
      { code, lifetime, homeAddress: node.homeAddress, homeAgent: this.address, identification },
      node.auth,
    );
    this.host.send(buildUdpDatagram({ src: this.address, dst: to, srcPort: MIP_PORT, dstPort: port }, payload));
    this.stats.replies[code] = (this.stats.replies[code] ?? 0) + 1;
    this.emit({ type: 'reply', homeAddress: u32ToIp(node.homeAddress), code, lifetime });
  }

  /** Writes what an accepted request changes before anything acts on it; false when the store refused. */
  private persisted(
    node: MobileNodeState,
    identification: bigint,
    binding?: { careOf: number; lifetime: number; registeredAt: number },
  ): boolean {
    if (!this.store) return true;
    const record: BindingRecord = { homeAddress: u32ToIp(node.homeAddress), lastAcceptedId: identification.toString() };
    if (binding)
      record.binding = {
        careOf: u32ToIp(binding.careOf),
        lifetime: binding.lifetime,
        registeredAt: binding.registeredAt,
      };
    try {
      this.store.write(record);
      return true;
    } catch {
      this.stats.drops.store_failed++;
      return false;
    }
  }

  /** Bindings and identifications from the store; lifetimes count from the original registration. */
  private restore(): { bindings: number; expired: number } {
    const counts = { bindings: 0, expired: 0 };
    if (!this.store) return counts;
    const now = this.clock.now();
    for (const record of this.store.load()) {
      const node = this.nodes.get(ipToU32(record.homeAddress));
      if (!node) continue;
      node.lastAcceptedId = BigInt(record.lastAcceptedId);
      const b = record.binding;
      if (!b) continue;
      if (b.registeredAt + b.lifetime * 1000 <= now) {
        counts.expired++;
        continue;
      }
      this.setBinding(node, ipToU32(b.careOf), b.lifetime, b.registeredAt);
      counts.bindings++;
    }
    return counts;
  }

  private setBinding(node: MobileNodeState, careOf: number, lifetime: number, registeredAt: number): void {
    node.binding?.timer?.cancel();
    const expiresAt = registeredAt + lifetime * 1000;
    node.binding = { careOf, lifetime, expiresAt };
    node.binding.timer = this.clock.setTimer(expiresAt - this.clock.now(), () => {
      // RFC 5944 §3.8.3: an expired binding is deleted silently.
      this.removeBinding(node);
      this.emit({ type: 'expired', homeAddress: u32ToIp(node.homeAddress) });
    });
    this.host.setProxy(u32ToIp(node.homeAddress), this.homeInterface, true);
    this.tables.publish();
  }

  private removeBinding(node: MobileNodeState): void {
    if (!node.binding) return;
    node.binding.timer?.cancel();
    node.binding = undefined;
    this.host.setProxy(u32ToIp(node.homeAddress), this.homeInterface, false);
    if (!this.closed) this.tables.publish();
  }

  /** What the tables compile: every binding, for the tables of the host's interfaces; none without a data path. */
  private tableContext() {
    const dataPath = this.host.dataPath;
    if (!dataPath || this.closed) return undefined;
    const bindings = new Map<number, number>();
    for (const node of this.nodes.values()) if (node.binding) bindings.set(node.homeAddress, node.binding.careOf);
    return {
      interfaceTables: this.host.interfaces().map((i) => dataPath.tableOf(i.name)),
      address: this.address,
      bindings,
    };
  }

  /** RFC 2003 encapsulation of an intercepted datagram: outer src = HA, dst = care-of address. */
  private tunnel(packet: Uint8Array, inner: Ipv4Header, careOf: number): void {
    // §3.2: never tunnel what comes from the tunnel exit (it covers nested IP-in-IP back from the CoA too).
    if (isIpipLoop(inner, careOf)) {
      this.stats.drops.loop++;
      return;
    }
    // We forward the datagram, so its TTL drops by one first (RFC 2003 §3.1).
    if (inner.ttl <= 1) {
      this.stats.drops.ttl_expired++;
      return;
    }
    const copy = packet.slice(0, inner.totalLength);
    decrementTtl(copy, 0);
    const r = this.run(Op.IPIP_ENCAP, copy, this.address, careOf);
    if (r?.verdict !== Verdict.FORWARD) {
      this.stats.drops[r?.reason === 'loop' ? 'loop' : 'bad_tunnel']++;
      return;
    }
    this.host.send(r.packet);
    this.stats.tunnelled++;
  }

  /** A reverse tunnel from a registered MN: accepted only from its care-of address with its home address inside. */
  private decapsulate(packet: Uint8Array): void {
    const parsed = parseIpip(packet, 0);
    if (!parsed.ok) {
      this.stats.drops[parsed.reason === 'ttl_expired' ? 'ttl_expired' : 'bad_tunnel']++;
      return;
    }
    const node = this.nodes.get(parsed.inner.src);
    if (!node?.binding || node.binding.careOf !== parsed.outer.src) {
      this.stats.drops.untrusted_tunnel++;
      return;
    }
    const r = this.run(Op.IPIP_DECAP, packet);
    if (r?.verdict !== Verdict.DELIVER) {
      this.stats.drops.bad_tunnel++;
      return;
    }
    const inner = r.packet;
    this.stats.decapsulated++;
    // The inner datagram may be for another away MN: that one is tunnelled on, not sent on the home link.
    const peer = this.nodes.get(parsed.inner.dst);
    if (peer?.binding) this.tunnel(inner, parsed.inner, peer.binding.careOf);
    else this.host.send(inner);
  }

  /** One engine op on one datagram; undefined when it does not fit a batch slot. The result's packet is a copy. */
  private run(
    op: typeof Op.IPIP_ENCAP | typeof Op.IPIP_DECAP,
    packet: Uint8Array,
    arg0 = 0,
    arg1 = 0,
  ): { verdict: number; reason: string; packet: Uint8Array } | undefined {
    this.batch.clear();
    if (packet.length > this.batch.slotSize - this.batch.headroom) return undefined;
    const i = this.batch.push(op, packet, arg0, arg1);
    this.engine.process(this.batch);
    const r = this.batch.result(i);
    return { verdict: r.verdict, reason: reasonName[r.reason], packet: r.packet.slice() };
  }

  private describeBinding(node: MobileNodeState): Binding {
    const b = node.binding!;
    return {
      homeAddress: u32ToIp(node.homeAddress),
      careOf: u32ToIp(b.careOf),
      lifetime: b.lifetime,
      expiresAt: b.expiresAt,
    };
  }

  private emit(event: HomeAgentEvent): void {
    for (const listener of [...this.listeners]) listener(event);
  }
}
