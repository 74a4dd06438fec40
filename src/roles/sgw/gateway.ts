// The security gateway (DESIGN §2, draft §2.1, §3, §4): one engine does the per-packet work; this
// class feeds it from the host's input hook (one batch per clock tick), installs SKIP SAs when
// the engine punts a new packet key, and asks the policy (src/policy/sgw.ts) what to do whenever
// the engine cannot decide alone: plain datagrams, end-layer contents, unrouted relays.
import { Op, Reason, reasonName, Verdict, type Engine } from '../../engine/index.js';
import type { ReasonCode } from '../../engine/types.js';
import { ICMP_QUOTE_MAX } from '../../engine/io.js';
import type { CertCache } from '../../keys/cache.js';
import type { Identity } from '../../keys/keyfile.js';
import type { OutboundRequest } from '../../keys/keying.js';
import { formatName, type SkipName } from '../../keys/names.js';
import type { Clock, EnginePunt, Host, HookResult, PacketContext, Timer } from '../../net/types.js';
import {
  decide,
  refusedVisitor,
  type Decision,
  type EndPeer,
  type PacketView,
  type SgwPlace,
  type SkipLayer,
} from '../../policy/sgw.js';
import { toU32, type Sgw, type TopologyMap } from '../../topology/map.js';
import { ipToU32, u32ToIp } from '../../wire/addr.js';
import { Icmp40Code } from '../../wire/icmp40.js';
import { isFragment } from '../../wire/fragment.js';
import type { Ipv4Header } from '../../wire/ipv4.js';
import type { UdpDatagram } from '../../wire/udp.js';
import { IPPROTO_SKIP, NSID_IPV4, NSID_NONE } from '../../wire/skip.js';
import { Tally } from '../common/counters.js';
import { CertificateDiscovery } from '../common/discovery.js';
import { readFailure, sendFailure } from '../common/failure.js';
import { spendRefusedKey } from '../common/restored-key.js';
import { discoveryIn, sgwName, type Discovery } from '../common/signalling.js';
import { NodeKeys, roleKeying, type SaFailure, type SaLimits, type SaLookup } from '../common/keys.js';
import type { KeyLog } from '../common/keylog.js';
import { TickPipeline, type EngineJob, type EngineOutcome } from '../common/pipeline.js';
import { RateLimiter, type RateLimitOptions } from '../common/ratelimit.js';
import { readableHeader, Reassembler, type Reassembled, type ReassemblyLimits } from '../common/reassembly.js';
import { DEFAULT_SUITES, type Suites } from '../common/suites.js';
import { CareOfTable } from './careofs.js';
import { DiscoveryCrossings } from './crossings.js';
import { certificateAuthority, vouchedCertificate } from './authority.js';
import { UdpSourceNat } from './nat.js';
import { LearnedRoutes, type LearnedRouteLimits } from './learned.js';
import { staticRoutes, type RouteIntent } from './routes.js';
import { SgwTables } from './tables.js';
import { addressesOf, firstLayerSequence, headerOf, outerLayer, parsedOf, tunnelledOf, viewOf } from './view.js';

export interface SecurityGatewayOptions {
  host: Host;
  clock: Clock;
  map: TopologyMap;
  /** This SGW's name in the map. */
  name: string;
  identity: Identity;
  /** Verified peer certificates (the CA is its trust anchor); discovery adds to it. */
  certs: CertCache;
  engine: Engine;
  /** The host interface on the protected side (default 'inside'); every other one is outside. */
  insideInterface?: string;
  suites?: Partial<Suites>;
  /** Plain datagrams from outside to a protected host (§3.5): drop (default) or pass. */
  plainInbound?: 'drop' | 'pass';
  /** Which visiting SMNs (home address) this site admits; default all. */
  admitsVisitor?: (home: string) => boolean;
  /** Test/lab only: keeps ESP keys in memory so describe() can open captured packets. */
  keyLog?: KeyLog;
  failureRate?: RateLimitOptions;
  discoveryTimeoutMs?: number;
  /** §3.5: translate inside addresses to the outside address for UDP that leaves as usual IP to an outside host. */
  natOutside?: boolean;
  /** Bounds of fragment reassembly (tests shrink them). */
  reassembly?: Partial<ReassemblyLimits>;
  /** Inbound SA caps (default 64 per peer, 65,536 in all). */
  saLimits?: SaLimits;
  /** Learned host routes: caps and lifetime (default 1024 per next-hop peer, 4096 in all, 60 s). */
  learnedRoutes?: LearnedRouteLimits;
  /**
   * Packets one packet key Kp protects before a new one is taken (node config policy.kpRotationPackets; default 2^20).
   */
  kpRotationPackets?: number;
}

/** What SecurityGateway.reconfigure can change; absent fields stay as they are. */
export type SgwReconfiguration = Partial<
  Pick<SecurityGatewayOptions, 'suites' | 'plainInbound' | 'admitsVisitor' | 'failureRate'>
>;

type Arrival = 'inside' | 'outside';
type Tag =
  // `firstOfKey`: the packet that keyed a new inbound SA, run again once it is installed. `loop`: the interface whose
  // I/O loop punted it.
  | { kind: 'inbound'; arrivedOn: Arrival; firstOfKey?: boolean; loop?: string }
  // `carries`: the datagram being protected, for an ICMP "fragmentation needed" if the link refuses the result.
  | { kind: 'encap'; wrapWith?: number; carries: Uint8Array }
  | { kind: 'send'; carries?: Uint8Array };
type Job = EngineJob<Tag>;

/**
 * Keying failures that mean "no key for you" (code 0) or "your key is wrong" (code 1); others are malformed packets.
 */
const NO_KEY: ReadonlySet<SaFailure> = new Set([
  'unknown_certificate',
  'expired_certificate',
  'certificate_not_yet_valid',
  'counter_window',
  'bad_dst_mkid',
]);
const BAD_KEY: ReadonlySet<SaFailure> = new Set(['forged_key', 'bad_peer_key', 'sa_mismatch']);
/** How long a neighbour route to a visiting SMN's home address lives (for failure messages on its link). */
const NEIGHBOUR_ROUTE_MS = 10_000;
/** How often the compiled tables are checked for rotated keys when no packet reaches the role. */
const TABLE_REFRESH_MS = 1_000;
/** Engine punts whose packet is a datagram an End-End SA opened: the policy decides where it goes (§3.2, §3.3). */
const OPENED: ReadonlySet<ReasonCode> = new Set([Reason.selector, Reason.deliver_local]);
/** Engine punts of a datagram a verified Next-hop layer protected that the engine does not relay by itself. */
const UNROUTED: ReadonlySet<ReasonCode> = new Set([Reason.no_route, Reason.nexthop_plain, Reason.relay_denied]);

export class SecurityGateway {
  readonly self: Sgw;
  private readonly host: Host;
  private readonly clock: Clock;
  private readonly engine: Engine;
  // suites, place.plainInbound, place.admitsVisitor and limiter change only through reconfigure().
  private suites: Suites;
  private readonly insideInterface: string;
  private readonly keys: NodeKeys;
  private readonly place: SgwPlace;
  private readonly careOfs: CareOfTable;
  private readonly crossings: DiscoveryCrossings;
  private readonly pipeline: TickPipeline<Tag>;
  private readonly discovery: CertificateDiscovery;
  /**
   * Failure budgets by the side the refused packet came from: an Internet flood cannot spend what a visitor inside
   * needs (§3.4).
   */
  private limiter: Record<Arrival, RateLimiter>;
  private readonly tally = new Tally();
  private readonly learned: LearnedRoutes;
  private readonly neighbourRoutes = new Map<string, Timer>();
  private routesCounter = -1;
  /** Which Next-hop SA each peer the routes name had when they were last published (installRoutes). */
  private routesKey = '';
  private readonly nat?: UdpSourceNat;
  private readonly removeHook: () => void;
  private readonly fragments: Reassembler;
  /**
   * On real interfaces: the decisions compiled into the engine the I/O loops run (undefined: every packet comes here).
   */
  private readonly tables?: SgwTables;
  private tableTimer?: Timer;
  private readonly removePuntHandler?: () => void;

  constructor(options: SecurityGatewayOptions) {
    const self = options.map.sgw(options.name);
    if (!self)
      throw new Error(
        `SGW '${options.name}' is not in network map ${options.map.name} ` +
          `(SGWs: ${options.map.sgws.map((s) => s.name).join(', ')})`,
      );
    if (options.identity.name.nsid !== NSID_NONE || u32ToIp(options.identity.name.address) !== self.outside) {
      throw new Error(
        `SGW ${self.name}: its identity is ${formatName(options.identity.name)}, but an SGW is named by its outside ` +
          `address: expected sgw:${self.outside}`,
      );
    }
    this.self = self;
    this.host = options.host;
    this.clock = options.clock;
    this.engine = options.engine;
    this.suites = { ...DEFAULT_SUITES, ...options.suites };
    this.insideInterface = options.insideInterface ?? 'inside';
    const keying = roleKeying({
      identity: options.identity,
      certs: options.certs,
      now: () => this.clock.now(),
      kpRotationPackets: options.kpRotationPackets,
      keyLog: options.keyLog,
    });
    const dataPath = options.host.dataPath;
    this.keys = new NodeKeys(
      keying,
      this.engine,
      options.keyLog,
      options.saLimits,
      dataPath && ((peer) => this.tables!.selectorsFor(peer)),
      dataPath && ((peer) => this.tables!.selectorMissFor(peer)),
      dataPath && ((peer, src) => this.tables!.plainFor(peer, src)),
    );
    this.learned = new LearnedRoutes(this.clock, this.tally, options.learnedRoutes);
    this.place = { map: options.map, self, plainInbound: options.plainInbound, admitsVisitor: options.admitsVisitor };
    this.careOfs = new CareOfTable(this.place, this.clock, this.tally);
    this.place.careOfs = this.careOfs;
    this.crossings = new DiscoveryCrossings(this.clock);
    this.limiter = failureLimiters(this.clock, options.failureRate);
    this.discovery = new CertificateDiscovery({
      host: this.host,
      clock: this.clock,
      own: options.identity.cert,
      cache: options.certs,
      localAddress: () => self.outside,
      tally: this.tally,
      timeoutMs: options.discoveryTimeoutMs,
      vouchesFor: (name) => vouchedCertificate(options.certs, name, Math.floor(this.clock.now() / 1000)),
    });
    if (options.natOutside) this.nat = new UdpSourceNat(this.clock, ipToU32(self.outside));
    this.engine.setLocalAddresses([self.inside, self.outside]);
    this.pipeline = new TickPipeline<Tag>(
      this.clock,
      this.engine,
      (outcomes) => this.handle(outcomes),
      () => this.refreshTables(),
    );
    this.fragments = new Reassembler(this.clock, this.tally, options.reassembly);
    if (dataPath) {
      const outside = this.host
        .interfaces()
        .map((i) => i.name)
        .filter((name) => name !== this.insideInterface);
      const ids = {
        inside: dataPath.tableOf(this.insideInterface),
        outside: outside.map((name) => dataPath.tableOf(name)),
      };
      const requests = {
        end: (end: EndPeer) => this.endRequest(end),
        nextHop: (peer: Sgw) => this.nextHopRequest(peer),
      };
      this.tables = new SgwTables(this.place, this.engine, this.keys, requests, ids, this.clock, this.tally);
      this.tables.natOutside = this.nat !== undefined;
      this.tables.refresh();
      this.scheduleTableRefresh();
      this.removePuntHandler = dataPath.onEnginePunt((punt) => this.onEnginePunt(punt));
    }
    this.removeHook = this.host.addHook('input', (packet, ctx) => this.onInput(packet, ctx));
  }

  /** Role counters: decisions, drops by reason, failure messages sent. The engine keeps its own (engine.counters()). */
  counters(): Record<string, number> {
    return this.tally.snapshot();
  }

  /**
   * Changes policy knobs while running (a daemon reload). New SAs key with the new suites; SAs already
   * installed stay as they are, under their ids, until they rotate (a new n or Kp) or expire, so traffic
   * on them is not interrupted. A new failure rate starts with fresh buckets.
   */
  reconfigure(changes: SgwReconfiguration): void {
    if (changes.suites) this.suites = { ...this.suites, ...changes.suites };
    if (changes.plainInbound) this.place.plainInbound = changes.plainInbound;
    if (changes.admitsVisitor) this.place.admitsVisitor = changes.admitsVisitor;
    if (changes.failureRate) this.limiter = failureLimiters(this.clock, changes.failureRate);
    // plainInbound is in the outside tables.
    this.tables?.refresh();
    // A successor key inherits from its peer's last key: the next one goes through keying here, with the new suites.
    if (this.host.dataPath) this.keys.resetSuccessors();
  }

  /** Care-of address → home address of this SGW's SMNs, as their HA accepted them (live bindings only). */
  knownCareOfs(): Map<string, string> {
    return new Map(this.careOfs.entries().map(([coa, home]) => [u32ToIp(coa), u32ToIp(home)]));
  }

  close(): void {
    this.removeHook();
    this.removePuntHandler?.();
    this.tableTimer?.cancel();
    this.pipeline.close();
    this.fragments.close();
    this.discovery.close();
    for (const timer of this.neighbourRoutes.values()) timer.cancel();
    this.keys.close();
  }

  // ── input ────────────────────────────────────────────────────────────────────────────────

  private onInput(packet: Uint8Array, ctx: PacketContext): HookResult {
    // What cannot be classified never passes: unreadable headers are dropped, fragments classified whole.
    const header = readableHeader(packet, this.tally);
    if (!header) return 'consumed';
    const arrivedOn: Arrival = ctx.iface === this.insideInterface ? 'inside' : 'outside';
    if (!isFragment(header)) return this.classify(packet, header, arrivedOn);
    const whole = this.fragments.push(packet, header);
    if (whole && this.classify(whole.datagram, whole.header, arrivedOn) === 'pass') this.release(whole, ctx);
    return 'consumed';
  }

  /** A reassembled datagram the policy passes: to us whole, else forwarded as the fragments it came in. */
  private release(whole: Reassembled, ctx: PacketContext): void {
    const packets = this.host.isLocal(u32ToIp(whole.header.dst)) ? [whole.datagram] : whole.fragments;
    for (const packet of packets) this.host.inject(packet, { iface: ctx.iface, bypassHooks: true });
  }

  /** The policy's verdict on a whole datagram: 'pass' lets the host deliver or forward it. */
  private classify(packet: Uint8Array, header: Ipv4Header, arrivedOn: Arrival): HookResult {
    if (header.protocol === IPPROTO_SKIP && this.isOwnAddress(header.dst)) {
      this.pipeline.push({ op: Op.INBOUND, packet: packet.slice(), tag: { kind: 'inbound', arrivedOn } });
      return 'consumed';
    }
    // The header read once here (and the UDP header, if any) is what every step below looks at.
    const parsed = parsedOf(packet, header);
    const view = viewOf(parsed, arrivedOn, (answer) => arrivedOn === 'outside' && this.awaited(answer));
    if (!view) {
      this.tally.add('drop_unreadable_skip');
      return 'consumed';
    }
    if (view.signalling && this.isOwnAddress(header.dst)) this.onFailureToUs(packet);
    if (arrivedOn === 'inside' && parsed.udp) {
      const replied = this.careOfs.observe(parsed.udp);
      if (replied !== undefined) this.tables?.resumeCareOf(replied);
    }
    if (this.nat && this.translated(packet, view, arrivedOn)) return 'consumed';
    const decision = decide(this.place, view);
    if (this.tables && arrivedOn === 'inside' && view.layers.length === 0) this.compile(decision, view);
    if (decision.action === 'pass' || decision.action === 'local') {
      this.tally.add(decision.action);
      if (decision.action === 'pass' && arrivedOn === 'inside' && view.signalling && parsed.udp)
        this.noteRequestOut(parsed.udp);
      return 'pass';
    }
    this.act(decision, packet.slice(), (job) => this.pipeline.push(job), arrivedOn);
    return 'consumed';
  }

  /**
   * A decision about a plain datagram from one of our own hosts that holds for every such datagram to its destination
   * goes into the tables (SgwTables says which and why); signalling, NAT and tunnels stay with the policy.
   */
  private compile(decision: Decision, view: PacketView): void {
    const { map } = this.place;
    const dgram = view.inner;
    if (!dgram || view.signalling || view.ipInIp || map.protectingSgw(dgram.src) !== this.self) return;
    if (decision.action === 'encap') {
      this.tables!.learnProtect(toU32(dgram.dst), decision.end, decision.nextHop);
    } else if (
      decision.action === 'pass' &&
      !this.nat &&
      !map.isProtected(dgram.dst) &&
      !this.careOfs.has(toU32(dgram.dst))
    ) {
      this.tables!.learnPass(toU32(dgram.dst));
    }
  }

  private scheduleTableRefresh(): void {
    this.tableTimer = this.clock.setTimer(TABLE_REFRESH_MS, () => {
      // Traffic the loops carry alone queues no flush: the tables and routes follow the keys on this tick too.
      this.refreshTables();
      this.scheduleTableRefresh();
    });
  }

  /** A punt of the I/O loops with engine context: handled as the same outcome of the role's own engine call. */
  private onEnginePunt(punt: EnginePunt): void {
    if (punt.reason === 'rekey') {
      this.rekeyed(punt);
      return;
    }
    if (punt.reason === 'rekey_due') {
      // An event, no packet: a compiled SA reached its soft limit; the tables move to a fresh key while it seals on.
      this.tally.add('rekey_due');
      this.tables?.refresh();
      return;
    }
    const arrivedOn: Arrival = punt.iface === this.insideInterface ? 'inside' : 'outside';
    const outcome = {
      verdict: Verdict.PUNT,
      reason: Reason[punt.reason],
      sa: punt.sa,
      packet: punt.packet,
      tag: { kind: 'inbound' as const, arrivedOn, loop: punt.iface },
    };
    const jobs = this.handle([outcome]);
    // A new key's first packet goes on at once (its SA just went in); the rest waits for the tick's batch.
    if (punt.reason === 'unknown_key') this.pipeline.runNow(jobs);
    else for (const job of jobs) this.pipeline.push(job);
  }

  /**
   * A compiled SA carried its packet key's share (kpRotationPackets): the tables move to a fresh key, and the datagram
   * the engine held back goes through them again in its loop (sealed with the new key; punted again if they no longer
   * cover it), or, with no loop to take it, through the policy as it arrived.
   */
  private rekeyed(punt: EnginePunt): void {
    this.tally.add('rekey');
    this.tables?.refresh();
    if (this.host.dataPath?.inject(punt.iface, [{ packet: punt.packet, via: 'outbound' }])) return;
    const ctx: PacketContext = { host: this.host.name, iface: punt.iface, time: this.clock.now() };
    if (this.onInput(punt.packet, ctx) === 'pass')
      this.host.inject(punt.packet, { iface: punt.iface, bypassHooks: true });
  }

  /** A discovery answer from outside for an inside host: only one to a request that host sent out through us passes. */
  private awaited(answer: Discovery): boolean {
    if (this.isOwnAddress(answer.dst)) return false;
    if (this.crossings.answers(answer)) return true;
    this.tally.add('discovery_answer_unawaited');
    return false;
  }

  /** A discovery request an inside host sends out: its answer may come back in. */
  private noteRequestOut(udp: UdpDatagram): void {
    const discovery = discoveryIn(udp);
    if (discovery?.message.type === 'request') this.crossings.sent(discovery);
  }

  /** §3.5 address translation: inside host → outside host as usual IP, and the answers back. */
  private translated(packet: Uint8Array, view: PacketView, arrivedOn: Arrival): boolean {
    if (!this.nat || view.layers.length > 0 || !view.inner) return false;
    const { map } = this.place;
    const out =
      arrivedOn === 'inside' &&
      map.protectingSgw(view.inner.src) === this.self &&
      !map.isProtected(view.inner.dst) &&
      !this.place.careOfs?.has(toU32(view.inner.dst));
    const translated = out ? this.nat.outbound(packet) : arrivedOn === 'outside' ? this.nat.inbound(packet) : undefined;
    if (!translated) return false;
    this.tally.add(out ? 'nat_out' : 'nat_in');
    this.transmit(translated);
    return true;
  }

  /** Carries out a decision about `datagram` (the packet, or what the engine unwrapped of it). */
  private act(d: Decision, datagram: Uint8Array, sink: (job: Job) => void, arrivedOn: Arrival): void {
    this.tally.add(d.action);
    switch (d.action) {
      case 'pass':
      case 'local':
        this.transmit(datagram);
        return;
      case 'encap':
        this.protect(datagram, d.end, d.nextHop, sink);
        return;
      case 'relay':
        // Relays of verified Next-hop layers are handled where the engine hands them over (onUnrouted).
        this.tally.add('drop_relay_without_layer');
        return;
      case 'decap':
        if (d.then.kind === 'deliver') this.transmit(datagram);
        else this.protect(datagram, d.then.end, d.then.nextHop, sink);
        return;
      case 'drop':
        this.tally.add(d.counter ? `drop_${d.counter}` : 'drop_policy');
        return;
      default:
        this.fail(d.icmp.code, d.icmp.to, datagram, arrivedOn);
    }
  }

  // ── engine outcomes ──────────────────────────────────────────────────────────────────────

  private handle(outcomes: EngineOutcome<Tag>[]): Job[] {
    const next: Job[] = [];
    const sink = (job: Job) => next.push(job);
    for (const o of outcomes) {
      const tag = o.tag;
      if (tag.kind !== 'inbound') {
        if (o.verdict !== Verdict.FORWARD) this.tally.add(`drop_engine_${reasonName[o.reason]}`);
        else if (tag.kind === 'encap' && tag.wrapWith !== undefined) {
          next.push({ op: Op.WRAP, packet: o.packet, arg0: tag.wrapWith, tag: { kind: 'send', carries: tag.carries } });
        } else this.transmit(o.packet, tag.carries);
        continue;
      }
      if (o.verdict === Verdict.FORWARD) {
        this.tally.add('relay');
        this.transmit(o.packet);
      } else if (o.verdict === Verdict.DELIVER) {
        this.onDelivered(o, tag.arrivedOn, sink);
      } else if (o.verdict === Verdict.PUNT && o.reason === Reason.unknown_key) {
        this.onUnknownKey(o, tag.arrivedOn, sink);
      } else if (o.verdict === Verdict.PUNT && OPENED.has(o.reason)) {
        this.onDelivered(o, tag.arrivedOn, sink);
      } else if (o.verdict === Verdict.PUNT && UNROUTED.has(o.reason)) {
        this.onUnrouted(o, tag.arrivedOn, sink);
      } else {
        this.onEngineDrop(o, tag);
      }
    }
    return next;
  }

  /** The engine opened every layer addressed to us: the policy decides on the contents (§3.2 step 2, §3.3). */
  private onDelivered(o: EngineOutcome<Tag>, arrivedOn: Arrival, sink: (job: Job) => void): void {
    const meta = this.keys.meta(o.sa);
    const inner = addressesOf(o.packet);
    if (!meta || !inner) {
      this.tally.add('drop_delivered_without_sa');
      return;
    }
    const layer: SkipLayer = {
      kind: meta.role,
      ip: { src: meta.src, dst: meta.dst },
      skipSrc: meta.peer,
      auth: 'verified',
    };
    // An SMN's datagram from its care-of address (a registration): its HA's reply must reach the care-of table.
    if (meta.peer.nsid !== NSID_NONE && toU32(inner.src) !== meta.peer.address)
      this.tables?.suspendCareOf(toU32(inner.src));
    // Under a Next-hop SA alone the engine delivers what was addressed to us, or what it took out of IP-in-IP addressed
    // to us.
    const ipInIp = meta.role === 'nexthop' && !this.isOwnAddress(inner.dst) ? inner : undefined;
    const d = decide(this.place, { arrivedOn, layers: [layer], inner, ipInIp });
    if (this.tables && meta.role === 'end' && meta.peer.nsid !== NSID_NONE) this.compileReencrypt(d, inner.dst);
    this.act(d, o.packet, sink, arrivedOn);
  }

  /** §3.3: what the policy re-encrypts for an SMN goes into the tables (SgwTables.learnReencrypt says when). */
  private compileReencrypt(d: Decision, dst: number): void {
    if (d.action === 'decap' && d.then.kind === 'reencap') this.tables!.learnReencrypt(dst, d.then.end, d.then.nextHop);
  }

  /**
   * A verified Next-hop layer around a datagram the engine leaves to the policy: one it has no route for, or a
   * plain one (not SKIP/AH/ESP, §3.2 step 2), which the engine never delivers or relays itself.
   */
  private onUnrouted(o: EngineOutcome<Tag>, arrivedOn: Arrival, sink: (job: Job) => void): void {
    const meta = this.keys.meta(o.sa);
    if (!meta) {
      this.tally.add('drop_unrouted_without_sa');
      return;
    }
    const hop: SkipLayer = {
      kind: 'nexthop',
      ip: { src: meta.src, dst: meta.dst },
      skipSrc: meta.peer,
      auth: 'verified',
    };
    const ip = headerOf(o.packet);
    const next = outerLayer(o.packet, undefined, ip);
    const view: PacketView = next
      ? { arrivedOn, layers: [hop, next] }
      : { arrivedOn, layers: [hop], inner: ip && { src: ip.src, dst: ip.dst }, ipInIp: tunnelledOf(o.packet, ip) };
    const d = decide(this.place, view);
    if (d.action !== 'relay') {
      this.act(d, o.packet, sink, arrivedOn);
      return;
    }
    this.tally.add('relay');
    if (!next && !view.ipInIp && this.tables) this.compilePlainPass(meta.peer, ip?.dst);
    // A layer for a host or care-of address: remember the route so the next packets stay in the engine. Now, not at
    // the next flush: a relay as it is queues no engine job, so no flush might come while the flow lasts.
    if (next) {
      this.learned.learn(`${u32ToIp(toU32(next.ip.dst))}/32`, d.nextHop);
      if (this.learned.takeChanges()) this.installRoutes();
    }
    if (!d.nextHop) {
      this.transmit(o.packet);
      return;
    }
    this.wrapFor(o.packet, d.nextHop, sink);
  }

  /**
   * §3.5: the policy stripped a visiting SMN's Next-hop layer and sends the plain datagram on as usual IP. For an
   * outside host (no SGW protects it, no care-of address of ours) that holds for every datagram of the SMN's to it,
   * which the SA's `plain` (SgwTables.plainFor) lets the engine forward alone once the Next-hop table passes `dst`.
   */
  private compilePlainPass(peer: SkipName, dst: number | undefined): void {
    if (dst === undefined || peer.nsid === NSID_NONE || this.isOwnAddress(dst)) return;
    if (this.place.map.isProtected(dst) || this.careOfs.has(dst)) return;
    this.tables!.learnPlainPass(dst);
  }

  /** Replaces a verified Next-hop layer: a fresh one for `peer` around the datagram it protected (§3.1). */
  private wrapFor(datagram: Uint8Array, peer: Sgw, sink: (job: Job) => void): void {
    const sa = this.keys.outbound(this.nextHopRequest(peer));
    if (sa.ok) sink({ op: Op.WRAP, packet: datagram, arg0: sa.id, tag: { kind: 'send' } });
    else
      this.onKeyFailure(sa, sgwName(peer), peer.outside, () =>
        this.wrapFor(datagram, peer, (job) => this.pipeline.push(job)),
      );
  }

  /** First packet of a new packet key: derive and install the inbound SA, then run the packet again. */
  private onUnknownKey(o: EngineOutcome<Tag>, arrivedOn: Arrival, sink: (job: Job) => void): void {
    const job: Job = { op: Op.INBOUND, packet: o.packet, tag: { kind: 'inbound', arrivedOn, firstOfKey: true } };
    const ip = headerOf(o.packet);
    const layer = outerLayer(o.packet, 'verified', ip);
    // Admission is decided when the layer is keyed: once its SA is installed, the engine relays on its own.
    const refused = layer && refusedVisitor(this.place, layer);
    if (refused && 'icmp' in refused) {
      this.tally.add(refused.action);
      this.fail(refused.icmp.code, refused.icmp.to, o.packet, arrivedOn);
      return;
    }
    const r = this.keys.inbound(o.packet, this.suites.coverage);
    if (r.ok) {
      this.tally.add('sa_installed');
      if (!this.reinjected(o, r.id, layer, ip)) sink(job);
      this.syncSuccessors();
      return;
    }
    if (r.reason === 'unknown_certificate' && layer) {
      const source = toU32(layer.ip.src);
      const ask = certificateAuthority(this.place.map, this.self, layer.skipSrc, source, arrivedOn);
      const refuse = () => this.refuseLayer(o.packet, 'unknown-key', arrivedOn);
      this.onKeyFailure(r, layer.skipSrc, ask, () => this.pipeline.push(job), refuse, u32ToIp(source));
      return;
    }
    this.tally.add(`drop_keying_${r.reason}`);
    if (NO_KEY.has(r.reason)) this.refuseLayer(o.packet, 'unknown-key', arrivedOn);
    else if (BAD_KEY.has(r.reason)) this.refuseLayer(o.packet, 'failed', arrivedOn);
  }

  /**
   * The first packet of another SGW's new key goes back to the I/O loop that punted it, which opens it as the key's
   * next packets (what its tables do not cover comes back as a punt with context): derive, install, re-inject, no
   * second pass of the engine and the policy here. An authentication failure is then dropped and counted like one of
   * the later packets. One at or under the floor its key tuple reached before a restart stays here: the engine would
   * drop it as a replay without telling the sender (refuseRestoredKey). An SMN's keys stay here too: the policy learns
   * from its first packets (registrations, re-encryption, §3.3).
   */
  private reinjected(
    o: EngineOutcome<Tag>,
    sa: number,
    layer: SkipLayer | undefined,
    ip: Ipv4Header | undefined,
  ): boolean {
    const loop = o.tag.kind === 'inbound' ? o.tag.loop : undefined;
    if (loop === undefined || layer?.skipSrc.nsid !== NSID_NONE) return false;
    const first = firstLayerSequence(o.packet, ip);
    const floor = this.engine.saStats(sa)?.[first?.header ?? 'espSeq'];
    if (!first || floor === undefined || first.seq <= floor) return false;
    if (!this.host.dataPath?.inject(loop, [{ packet: o.packet, via: 'inbound' }])) return false;
    this.tally.add('first_packet_reinjected');
    return true;
  }

  private onEngineDrop(o: EngineOutcome<Tag>, tag: Extract<Tag, { kind: 'inbound' }>): void {
    this.tally.add(`drop_engine_${reasonName[o.reason]}`);
    if (o.reason === Reason.auth) this.refuseLayer(o.packet, 'failed', tag.arrivedOn);
    else if (o.reason === Reason.replay && tag.firstOfKey) this.refuseRestoredKey(o.packet, tag.arrivedOn);
  }

  /**
   * The first packet of a packet key new to this process is a replay only under the floor its key tuple reached
   * before a restart (src/daemon/replay-marks.ts): the sender is still below it, and every packet it sends under that
   * Kp would be refused until it climbs past. Code 0 (the key expired for us) tells it to move to a new Kp, whose
   * window is fresh.
   */
  private refuseRestoredKey(datagram: Uint8Array, arrivedOn: Arrival): void {
    const layer = outerLayer(datagram);
    if (!layer) return;
    this.tally.add('refused_restored_key');
    this.fail(Icmp40Code.badSpi, u32ToIp(toU32(layer.ip.src)), datagram, arrivedOn);
  }

  /** A peer that restarted refuses one of our packet keys with code 0 (refuseRestoredKey): take a fresh Kp. */
  private onFailureToUs(packet: Uint8Array): void {
    const failure = readFailure(packet);
    if (!failure || !spendRefusedKey(this.keys, failure, this.tally)) return;
    this.tables?.refresh();
    this.installRoutes();
  }

  /** Answers a layer addressed to us that did not verify, as the policy says (code 0 or 1). */
  private refuseLayer(datagram: Uint8Array, auth: 'failed' | 'unknown-key', arrivedOn: Arrival): void {
    const layer = outerLayer(datagram, auth);
    if (!layer) return;
    const d = decide(this.place, { arrivedOn, layers: [layer] });
    if ('icmp' in d) this.fail(d.icmp.code, d.icmp.to, datagram, arrivedOn);
  }

  // ── protecting ───────────────────────────────────────────────────────────────────────────

  /** End-End layer to `end`, inside a Next-hop layer for `nextHop` when one lies between (§4.5). */
  private protect(datagram: Uint8Array, end: EndPeer, nextHop: Sgw | undefined, sink: (job: Job) => void): void {
    const endReq = this.endRequest(end);
    const endSa = this.keys.outbound(endReq);
    const retry = () => this.protect(datagram, end, nextHop, (job) => this.pipeline.push(job));
    if (!endSa.ok) {
      this.onKeyFailure(endSa, endReq.peer, end.kind === 'sgw' ? end.sgw.outside : end.careOf, retry);
      return;
    }
    let wrapWith: number | undefined;
    if (nextHop) {
      const hop = this.keys.outbound(this.nextHopRequest(nextHop));
      if (!hop.ok) {
        this.onKeyFailure(hop, sgwName(nextHop), nextHop.outside, retry);
        return;
      }
      wrapWith = hop.id;
    }
    sink({
      op: Op.ENCAP,
      packet: datagram,
      arg0: endSa.id,
      tag: { kind: 'encap', wrapWith, carries: datagram.slice(0, ICMP_QUOTE_MAX) },
    });
  }

  private endRequest(end: EndPeer): OutboundRequest {
    const base = { src: this.self.outside, role: 'end' as const, esp: this.suites.esp, ah: this.suites.endAh };
    return end.kind === 'sgw'
      ? { ...base, peer: sgwName(end.sgw), dst: end.sgw.outside }
      : { ...base, peer: { nsid: NSID_IPV4, address: ipToU32(end.home) }, dst: end.careOf };
  }

  private nextHopRequest(peer: Sgw): OutboundRequest {
    return {
      peer: sgwName(peer),
      src: this.self.outside,
      dst: peer.outside,
      role: 'nexthop',
      ah: this.suites.nextHopAh,
      coverage: this.suites.coverage,
    };
  }

  /**
   * A missing certificate is fetched from `ask` (then `retry`), on behalf of a packet from `source`;
   * with nobody to ask, or any other keying failure, the packet drops, counted by reason.
   */
  private onKeyFailure(
    r: Extract<SaLookup, { ok: false }>,
    peer: SkipName,
    ask: string | undefined,
    retry: () => void,
    refuse?: () => void,
    source?: string,
  ): void {
    if (r.reason !== 'unknown_certificate' || ask === undefined) {
      this.tally.add(r.reason !== 'unknown_certificate' ? `drop_keying_${r.reason}` : 'drop_discovery_no_authority');
      refuse?.();
      return;
    }
    this.tally.add('held_for_certificate');
    this.discovery.fetch(
      peer,
      ask,
      (outcome) => {
        if (outcome.ok) {
          retry();
          return;
        }
        this.tally.add(`drop_${outcome.reason}`);
        refuse?.();
      },
      source,
    );
  }

  // ── tables, output ───────────────────────────────────────────────────────────────────────

  /**
   * With I/O loops, another SGW's next packet keys are keyed in the worker that reads their first packet (successor
   * keys, docs/engine.md §4.3): the new SA inherits from the one this side keyed, so nothing is decided there that
   * was not decided here. The loops re-inject such a key's first packet today anyway (reinjected); this skips the
   * round trip through this thread.
   */
  private syncSuccessors(): void {
    if (!this.host.dataPath) return;
    const keyed = this.keys.syncSuccessors();
    if (keyed > 0) this.tally.add('successor_keyed', keyed);
  }

  /**
   * Before each flush: next-hop routes follow the SKIP counter (a new n means new outbound SAs, and old ones
   * expire), and routes learned or expired since the last flush reach the engine in one setRoutes.
   */
  private refreshTables(): void {
    this.syncSuccessors();
    const n = this.keys.keying.counter();
    const newCounter = n !== this.routesCounter;
    // The compiled tables move to new SAs before expire() removes the old ones.
    this.tables?.refresh();
    if (newCounter) {
      this.routesCounter = n;
      this.keys.expire();
    } else {
      this.keys.retireSuperseded();
    }
    this.installRoutes(this.learned.takeChanges() || newCounter);
  }

  /**
   * Publishes the next-hop routes when the intents changed (`changed`) or the Next-hop SA of a peer they name did:
   * a peer whose certificate arrived since, a Kp used up or refused. Without the peer's certificate yet, its
   * prefixes stay unrouted: the engine punts and discovery runs.
   */
  private installRoutes(changed = true): void {
    const intents: RouteIntent[] = [...staticRoutes(this.place.map, this.self), ...this.learned.intents()];
    const saOf = new Map<Sgw, number | undefined>();
    for (const { via } of intents) {
      if (!via || saOf.has(via)) continue;
      const request = this.nextHopRequest(via);
      // The periodic check follows the SAs there are; a peer nothing was relayed to yet is keyed when the intents
      // change or by its first relay (onUnrouted), not by the check.
      const sa = changed || this.keys.hasOutbound(request) ? this.keys.outbound(request) : undefined;
      saOf.set(via, sa?.ok ? sa.id : undefined);
    }
    const key = [...saOf].map(([peer, sa]) => `${peer.name}=${sa ?? '-'}`).join(',');
    if (!changed && key === this.routesKey) return;
    this.routesKey = key;
    const routes = [];
    for (const { prefix, via } of intents) {
      const sa = via ? saOf.get(via) : 0;
      if (sa !== undefined) routes.push({ prefix, sa });
    }
    this.engine.setRoutes(routes);
  }

  private transmit(datagram: Uint8Array, carries?: Uint8Array): void {
    const sent = this.host.send(datagram, { bypassHooks: true, carries });
    if (!sent.ok) this.tally.add(`drop_send_${sent.reason}`);
  }

  /** A failure message from our outside address (our SKIP name, which the SMN keys its Next-hop AH with). */
  private fail(code: number, to: string, original: Uint8Array, arrivedOn: Arrival): void {
    // A visiting SMN's home address is not routed here: answer on the link the packet came from.
    if (arrivedOn === 'inside' && !this.place.map.isWithin(this.place.map.protectingSgw(to) ?? this.self, this.self))
      this.addNeighbourRoute(to);
    sendFailure(this.host, this.limiter[arrivedOn], this.tally, this.self.outside, to, code, original);
  }

  private addNeighbourRoute(address: string): void {
    const prefix = `${address}/32`;
    this.neighbourRoutes.get(prefix)?.cancel();
    this.host.addRoute(prefix, { iface: this.insideInterface });
    this.neighbourRoutes.set(
      prefix,
      this.clock.setTimer(NEIGHBOUR_ROUTE_MS, () => {
        this.neighbourRoutes.delete(prefix);
        this.host.removeRoute(prefix);
      }),
    );
  }

  private isOwnAddress(address: number): boolean {
    return address === ipToU32(this.self.inside) || address === ipToU32(this.self.outside);
  }
}

function failureLimiters(clock: Clock, options: RateLimitOptions | undefined): Record<Arrival, RateLimiter> {
  return { inside: new RateLimiter(clock, options), outside: new RateLimiter(clock, options) };
}
