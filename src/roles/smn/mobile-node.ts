// The security mobile node (DESIGN §2, draft §2.1, §3.2–§3.5, §4.4–§4.5): its own IPsec end and a
// Mobile IPv4 node with a co-located care-of address. Registrations and data leave through the
// host's output hook, which wraps them in the layers the path table says (End-End to an SGW,
// Next-hop layers for the SGWs that asked); failure messages teach the path table; what arrives
// in SKIP layers is opened by the engine and handed back to the host (the HA's tunnel, replies).
import { Op, Reason, reasonName, Verdict, type Engine, type ReasonName } from '../../engine/index.js';
import type { CertCache } from '../../keys/cache.js';
import type { Identity } from '../../keys/keyfile.js';
import type { OutboundRequest } from '../../keys/keying.js';
import type { Clock, Host, HookResult, PacketContext, Timer } from '../../net/types.js';
import { communicationMode } from '../../topology/position.js';
import type { Sgw, TopologyMap } from '../../topology/map.js';
import { ipToU32, u32ToIp } from '../../wire/addr.js';
import { isFragment } from '../../wire/fragment.js';
import { parseIpv4, type Ipv4Header } from '../../wire/ipv4.js';
import type { MnHaKey } from '../../wire/mobileip.js';
import { IPPROTO_SKIP, NSID_NONE } from '../../wire/skip.js';
import { Icmp40Code } from '../../wire/icmp40.js';
import { Tally } from '../common/counters.js';
import { CertificateDiscovery } from '../common/discovery.js';
import { readFailure, sendFailure, type ReceivedFailure } from '../common/failure.js';
import { RateLimiter } from '../common/ratelimit.js';
import { spendRefusedKey } from '../common/restored-key.js';
import { isDiscovery, isSecurityFailure, sgwName } from '../common/signalling.js';
import { NodeKeys, roleKeying } from '../common/keys.js';
import type { KeyLog } from '../common/keylog.js';
import { TickPipeline, type EngineJob, type EngineOutcome } from '../common/pipeline.js';
import { readableHeader, Reassembler, type ReassemblyLimits } from '../common/reassembly.js';
import { DEFAULT_SUITES, type Suites } from '../common/suites.js';
import { RegistrationClient, type RegistrationClientOptions, type RegistrationEvent } from './registration-client.js';
import { UdpRegistrationTransport } from './registration-transport.js';
import { TunnelEndpoint } from './tunnel-endpoint.js';
import { PathTable, type Layers, type Procedure } from './paths.js';
import { SentLog } from './sent.js';
import { SmnTables, type Protection } from './tables.js';

/** What the SMN does with a correspondent outside every VPN-routable site (§3.5). */
export type OutsidePolicy = 'mobile-ip' | 'direct';

export interface MobileNodeOptions {
  host: Host;
  clock: Clock;
  /**
   * Packets one packet key Kp protects before a new one is taken (node config policy.kpRotationPackets; default 2^20).
   */
  kpRotationPackets?: number;
  map: TopologyMap;
  /** smn:<home address>. */
  identity: Identity;
  certs: CertCache;
  engine: Engine;
  /** The host interface that moves between networks. */
  interface: string;
  mnHaKey: MnHaKey;
  /** Border-SGWs known before leaving home (§2.4), by name; default: the home network's Border-SGW. */
  knownBorders?: string[];
  /** 'direct' (default): End-End with the SGW the map names; 'three-step': §3.2 from a plain packet. */
  procedure?: Procedure;
  /** §3.5: Mobile IP without IPsec (default), or direct care-of communication. */
  outsideCh?: OutsidePolicy;
  suites?: Partial<Suites>;
  keyLog?: KeyLog;
  /** Bounds of fragment reassembly, each way (tests shrink them). */
  reassembly?: Partial<ReassemblyLimits>;
  registration?: Partial<
    Pick<RegistrationClientOptions, 'lifetime' | 'initialRetransmitMs' | 'maxRetransmitMs' | 'reregisterAt'>
  >;
  /**
   * The port the host's applications send through (a TUN whose loop runs OUTBOUND with this port's table, see
   * host.dataPath); default APPLICATION_PORT. Only used when the host has a native data path.
   */
  applicationPort?: string;
}

/** The name a host's data path knows the SMN's application TUN by (src/net/linux/app-tun.ts). */
export const APPLICATION_PORT = 'mipsec-apps';
/** How often the compiled policies are checked against the keys (an SA rotates when n moves on or Kp is used up). */
export const TABLE_REFRESH_MS = 250;

export type Position = { place: 'home' | 'visiting' | 'outside'; careOf: string; site?: string; vpnRoutable: boolean };

type Tag =
  | { kind: 'out'; wraps: number[] }
  // `firstOfKey`: the packet that keyed a new inbound SA, run again once it is installed.
  | { kind: 'in'; firstOfKey?: boolean };
type Job = EngineJob<Tag>;

/** A destination whose datagrams leave with no layer (SmnTables: `bypass`). */
const PLAIN: Protection = { sa: 0, wraps: [] };

/** Packets kept per destination to re-send once a failure message has changed how they must be wrapped. */
const RESEND_WINDOW_MS = 1000;
const RESEND_MAX = 16;

export class MobileNode {
  readonly homeAddress: string;
  readonly homeAgent: string;
  private readonly host: Host;
  private readonly clock: Clock;
  private readonly map: TopologyMap;
  private readonly engine: Engine;
  private readonly iface: string;
  private readonly suites: Suites;
  private readonly keys: NodeKeys;
  /** Replaced only by setKnownBorders(). */
  private paths: PathTable;
  private readonly procedure: Procedure;
  private readonly outsideCh: OutsidePolicy;
  private readonly pipeline: TickPipeline<Tag>;
  private readonly discovery: CertificateDiscovery;
  private readonly tunnel: TunnelEndpoint;
  readonly registration: RegistrationClient;
  private readonly tally = new Tally();
  /** Bounds the failure messages this SMN sends (code 0 for a key under a restored floor). */
  private readonly limiter: RateLimiter;
  private readonly recent = new Map<number, { packet: Uint8Array; at: number }[]>();
  /** What left recently, in every form an SGW on the way may quote back in a failure message. */
  private readonly sent: SentLog;
  private careOf: number;
  private readonly removers: (() => void)[] = [];
  /**
   * Fragments arriving, and fragments of the SMN's own applications (apart, so a flood in cannot starve what goes out).
   */
  private readonly inFragments: Reassembler;
  private readonly outFragments: Reassembler;
  /** What the engine protects on its own (a host with a native data path); empty otherwise. */
  private readonly tables: SmnTables;
  private readonly applicationPort: string;
  private refreshTimer: Timer | undefined;

  constructor(options: MobileNodeOptions) {
    this.host = options.host;
    this.clock = options.clock;
    this.limiter = new RateLimiter(options.clock);
    this.map = options.map;
    this.engine = options.engine;
    this.iface = options.interface;
    this.suites = { ...DEFAULT_SUITES, ...options.suites };
    this.outsideCh = options.outsideCh ?? 'mobile-ip';
    this.homeAddress = u32ToIp(options.identity.name.address);
    const ha = this.map.homeAgentFor(this.homeAddress);
    if (options.identity.name.nsid === NSID_NONE || !ha) {
      throw new Error(
        `SMN identity must be smn:<home address> with an HA in map ${this.map.name} serving it; ` +
          `got ${this.homeAddress}`,
      );
    }
    this.homeAgent = ha.address;
    this.procedure = options.procedure ?? 'direct';
    this.sent = new SentLog(() => this.clock.now());
    this.paths = this.pathTable(options.knownBorders ?? [this.map.chain(ha.sgw).at(-1)!.name]);
    const keying = roleKeying({
      identity: options.identity,
      certs: options.certs,
      now: () => this.clock.now(),
      kpRotationPackets: options.kpRotationPackets,
      keyLog: options.keyLog,
    });
    this.applicationPort = options.applicationPort ?? APPLICATION_PORT;
    // On a native data path, what an End-End layer opens is delivered by the engine only when it is for the home
    // address (the applications' traffic), or, away from home, when it is the HA's RFC 2003 tunnel to the care-of
    // address (`local`) around such a datagram (selectors.tunnel: exactly that tunnel, judged by what it carries);
    // the rest — registration replies, failures — is punted here. The interface loops peel the HA's tunnel for the
    // kernel when the host asked them to (IoLoopOptions.kernelTunnel: an application port's home address, a lab
    // host's) and punt it here (deliver_local) otherwise, as before. Bare IP-in-IP from the wire is never delivered:
    // only an End-End layer speaks for what it carries (docs/engine.md §5).
    const home = `${this.homeAddress}/32`;
    const selectors = (_peer: unknown, local: string) => ({
      src: ['0.0.0.0/0'],
      dst: [home],
      ...(local !== this.homeAddress ? { tunnel: { src: this.homeAgent, dst: local } } : {}),
    });
    this.keys = new NodeKeys(keying, this.engine, options.keyLog, {}, this.host.dataPath ? selectors : undefined);
    this.tables = new SmnTables(this.engine, () => this.tableContext());
    this.careOf = ipToU32(this.currentAddress());
    this.paths.reset(this.careOf);
    this.setLocalAddresses();
    this.pipeline = new TickPipeline<Tag>(
      this.clock,
      this.engine,
      (o) => this.handle(o),
      () => this.keys.expire(),
    );
    this.discovery = new CertificateDiscovery({
      host: this.host,
      clock: this.clock,
      own: options.identity.cert,
      cache: options.certs,
      localAddress: () => u32ToIp(this.careOf),
      tally: this.tally,
    });
    this.inFragments = new Reassembler(this.clock, this.tally, options.reassembly);
    this.outFragments = new Reassembler(this.clock, this.tally, options.reassembly);
    this.tunnel = new TunnelEndpoint({
      host: this.host,
      homeAddress: this.homeAddress,
      homeAgent: this.homeAgent,
      accept: 'authenticated',
    });
    this.registration = new RegistrationClient({
      clock: this.clock,
      transport: new UdpRegistrationTransport(this.host, this.homeAgent),
      homeAddress: this.homeAddress,
      homeAgent: this.homeAgent,
      auth: options.mnHaKey,
      initialRetransmitMs: 500,
      ...options.registration,
    });
    if (this.host.dataPath) this.removers.push(this.host.dataPath.onEnginePunt((p) => this.onEnginePunt(p)));
    this.tables.publish();
    this.removers.push(
      this.host.addHook('input', (packet, ctx) => this.onInput(packet, ctx)),
      this.host.addHook('output', (packet) => this.onOutput(packet)),
      this.host.onDeliver((packet) => this.onDeliver(packet)),
    );
    if (this.careOf !== ipToU32(this.homeAddress)) this.enterForeign();
  }

  /**
   * Changes the Border-SGWs the SMN may build a VPN to from outside (a daemon reload). The paths learned
   * so far are forgotten and learned again from the next packets; installed SAs stay as they are.
   */
  setKnownBorders(names: readonly string[]): void {
    const paths = this.pathTable(names);
    paths.reset(this.careOf);
    this.paths = paths;
    this.tables.clear();
  }

  private pathTable(borderNames: readonly string[]): PathTable {
    const borders = borderNames.map((name) => {
      const sgw = this.map.sgw(name);
      if (!sgw?.border) throw new Error(`knownBorders: '${name}' is not a Border-SGW of map ${this.map.name}`);
      return sgw;
    });
    const ha = this.map.homeAgentFor(this.homeAddress)!;
    return new PathTable(this.map, this.procedure, borders, { sgw: ha.sgw, homeAgent: ipToU32(ha.address) }, () =>
      this.clock.now(),
    );
  }

  /** Where the SMN is (§4.2): at home, visiting an SGW-protected site, or outside. */
  position(): Position {
    const careOf = u32ToIp(this.careOf);
    if (this.careOf === ipToU32(this.homeAddress))
      return { place: 'home', careOf, site: this.map.protectingSgw(careOf)?.site.name, vpnRoutable: true };
    const sgw = this.map.protectingSgw(careOf);
    return sgw
      ? { place: 'visiting', careOf, site: sgw.site.name, vpnRoutable: sgw.vpnRoutable }
      : { place: 'outside', careOf, vpnRoutable: false };
  }

  /**
   * The source address to use toward `dst`: the home address, or the care-of address for direct communication (§3.5).
   */
  addressFor(dst: string): string {
    const away = this.careOf !== ipToU32(this.homeAddress);
    const mode = communicationMode(this.map, this.careOf, dst).mode;
    return away && (mode === 3 || mode === 4) && this.outsideCh === 'direct' ? u32ToIp(this.careOf) : this.homeAddress;
  }

  /** Sends a datagram from this node (source: addressFor(dst)). */
  send(datagram: Uint8Array): void {
    const sent = this.host.send(datagram);
    if (!sent.ok) this.tally.add(`drop_send_${sent.reason}`);
  }

  /**
   * Handover: the interface joins `link` with `cidr`, default route via `gateway`. Back on the
   * home address it deregisters; elsewhere it registers the new care-of address through the gateways.
   */
  moveTo(link: string, cidr: string, gateway?: string): void {
    this.host.moveInterface(this.iface, link, cidr);
    if (gateway) this.host.addRoute('0.0.0.0/0', { via: gateway });
    this.careOf = ipToU32(this.currentAddress());
    this.paths.reset(this.careOf);
    this.recent.clear();
    this.sent.clear();
    // New outer addresses, new SAs: nothing compiled for the old point of attachment stays in the engine.
    this.tables.clear();
    this.setLocalAddresses();
    if (this.careOf === ipToU32(this.homeAddress)) {
      this.tunnel.returnHome();
      this.registration.returnHome();
    } else {
      this.enterForeign();
    }
  }

  onRegistration(listener: (event: RegistrationEvent) => void): () => void {
    return this.registration.on(listener);
  }

  counters(): Record<string, number> {
    const tunnel = Object.entries(this.tunnel.counters())
      .filter(([, n]) => n > 0)
      .map(([reason, n]): [string, number] => [`drop_tunnel_${reason}`, n]);
    return { ...this.tally.snapshot(), ...Object.fromEntries(tunnel) };
  }

  /** The policies the engine holds for this SMN (empty without a native data path). */
  policies(): ReturnType<SmnTables['policies']> {
    return this.tables.policies();
  }

  close(): void {
    for (const remove of this.removers) remove();
    this.refreshTimer?.cancel();
    this.refreshTimer = undefined;
    this.tables.clear();
    this.pipeline.close();
    this.inFragments.close();
    this.outFragments.close();
    this.registration.stop();
    this.tunnel.close();
    this.discovery.close();
    this.keys.close();
  }

  /**
   * The engine's own addresses: the care-of address, and the home address unless the host's applications own it on
   * their port (host.dataPath.applicationAddress) while away: then the interface loops hand what an End-End SA
   * opens for it to the kernel, whose replies from it enter the application port's table (sealed by the engine), so
   * the applications' inbound traffic does not pass through JS. At home the interface carries it: the engine's.
   */
  private setLocalAddresses(): void {
    const careOf = u32ToIp(this.careOf);
    const kernelOwned = careOf !== this.homeAddress && this.host.dataPath?.applicationAddress?.() === this.homeAddress;
    this.engine.setLocalAddresses(kernelOwned ? [careOf] : [careOf, this.homeAddress]);
  }

  private enterForeign(): void {
    const careOf = u32ToIp(this.careOf);
    // The home address stays ours on the visited link (as a host answers for any of its addresses).
    this.host.setProxy(this.homeAddress, this.iface, true);
    this.tunnel.enterForeign(careOf);
    this.registration.attach(careOf);
  }

  private currentAddress(): string {
    const info = this.host.interfaces().find((i) => i.name === this.iface);
    if (!info) throw new Error(`host '${this.host.name}' has no interface '${this.iface}' for the SMN`);
    return info.address;
  }

  // ── sending ──────────────────────────────────────────────────────────────────────────────

  private onOutput(packet: Uint8Array): HookResult {
    const header = readableHeader(packet, this.tally);
    if (!header) return 'consumed';
    if (this.careOf === ipToU32(this.homeAddress)) return 'pass';
    if (!isFragment(header)) return this.classifyOutput(packet, header);
    // The applications' fragments are protected whole; those the rules pass leave as they were sent.
    const whole = this.outFragments.push(packet, header);
    if (whole && this.classifyOutput(whole.datagram, whole.header) === 'pass') {
      for (const fragment of whole.fragments) this.host.send(fragment, { bypassHooks: true });
    }
    return 'consumed';
  }

  /** Which layers a whole datagram of ours leaves in, or 'pass' for none (`header`: its addresses and protocol). */
  private classifyOutput(packet: Uint8Array, header: Ipv4Header): HookResult {
    const { src, dst, protocol } = header;
    if (src !== this.careOf && src !== ipToU32(this.homeAddress)) return 'pass';
    // Signalling stays plain (ICMP 40, SKIP, certificate discovery); an application's ICMP (ping) is protected like its
    // UDP and TCP.
    if (isSecurityFailure(packet, header) || protocol === IPPROTO_SKIP || isDiscovery(packet)) return 'pass';
    // §4.5.4: a correspondent on the visited network is reached directly.
    const here = this.map.protectingSgw(this.careOf);
    if (here && this.map.protectingSgw(dst) === here) return this.passed('pass_local');
    const mode = communicationMode(this.map, this.careOf, dst).mode;
    // §3.5: usual IP to an outside correspondent, though still with the visited site's Next-hop layers.
    if (mode === 3 || mode === 4)
      this.tally.add(this.outsideCh === 'direct' || src === this.careOf ? 'usual_ip_care_of' : 'usual_ip_mobile');
    this.remember(dst, packet);
    // An SGW that strips our Next-hop layer may quote the plain datagram.
    this.sent.record(packet);
    this.protect(packet.slice(), dst, (job) => this.pipeline.push(job));
    return 'consumed';
  }

  private passed(note: string): HookResult {
    this.tally.add(note);
    return 'pass';
  }

  /** Builds the layers the path table asks for: End-End (or none), then Next-hop layers inside out. */
  private protect(packet: Uint8Array, dst: number, sink: (job: Job) => void): void {
    const careOf = this.careOf;
    // After a certificate fetch, the packet goes again, unless the SMN has moved meanwhile.
    const retry = () => {
      if (this.careOf === careOf) this.protect(packet, dst, (job) => this.pipeline.push(job));
    };
    const layers = this.paths.layersFor(dst);
    if (layers.stage === 'refused') {
      this.tally.add('drop_visit_refused');
      return;
    }
    const wraps: number[] = [];
    for (const hop of [...layers.hops].reverse()) {
      const sa = this.outbound(
        {
          peer: sgwName(hop),
          src: u32ToIp(this.careOf),
          dst: hop.outside,
          role: 'nexthop',
          ah: this.suites.nextHopAh,
          coverage: this.suites.coverage,
        },
        hop,
        retry,
      );
      if (sa === undefined) return;
      wraps.push(sa);
    }
    if (layers.stage === 'end' && layers.end) {
      const end = layers.end;
      const sa = this.outbound(
        {
          peer: sgwName(end),
          src: u32ToIp(this.careOf),
          dst: end.outside,
          role: 'end',
          esp: this.suites.esp,
          ah: this.suites.endAh,
        },
        end,
        retry,
      );
      if (sa === undefined) return;
      // The next packets to dst are the engine's (a native data path): the same SAs, in the same order.
      this.compile(dst, { sa, wraps });
      sink({ op: Op.ENCAP, packet, arg0: sa, tag: { kind: 'out', wraps } });
      return;
    }
    if (this.leavesPlain(dst, layers)) this.compile(dst, PLAIN);
    else if (this.nextHopOnly(dst, layers)) this.compile(dst, { sa: 0, wraps });
    else this.tables.forget(dst);
    const first = wraps.shift();
    if (first === undefined) {
      this.tally.add('sent_plain');
      this.emit(packet);
      return;
    }
    sink({ op: Op.WRAP, packet, arg0: first, tag: { kind: 'out', wraps } });
  }

  private outbound(req: OutboundRequest, peer: Sgw, retry: () => void): number | undefined {
    const r = this.keys.outbound(req);
    if (r.ok) return r.id;
    if (r.reason === 'unknown_certificate') {
      this.tally.add('held_for_certificate');
      this.discovery.fetch(req.peer, peer.outside, (outcome) =>
        outcome.ok ? retry() : this.tally.add(`drop_${outcome.reason}`),
      );
    } else {
      this.tally.add(`drop_keying_${r.reason}`);
    }
    return undefined;
  }

  // ── the engine's tables (a host with a native data path) ───────────────────────────────────

  private tableContext():
    | { appTable: number; interfaceTables: number[]; homeAddress: string; careOf: string }
    | undefined {
    const dp = this.host.dataPath;
    if (!dp) return undefined;
    return {
      appTable: dp.tableOf(this.applicationPort),
      interfaceTables: [dp.tableOf(this.iface)],
      homeAddress: this.homeAddress,
      careOf: u32ToIp(this.careOf),
    };
  }

  private compile(dst: number, protection: Protection): void {
    if (!this.host.dataPath) return;
    this.tables.set(dst, protection);
    this.refreshTimer ??= this.clock.setTimer(TABLE_REFRESH_MS, () => this.refresh());
  }

  /** Moves the tables to fresh keys at once (a soft limit, a rotation, a receiver that lost our key). */
  private refreshNow(): void {
    this.refreshTimer?.cancel();
    this.refresh();
  }

  /**
   * Checks every compiled destination against the path table and the keys: an SA that rotated (n moved on, Kp
   * used up) is replaced in the policy, a destination whose path changed or whose keys fail goes back to JS.
   */
  private refresh(): void {
    this.refreshTimer = undefined;
    // SAs a rotation replaced stay installed until the tables no longer name them (a packet the loop seals
    // meanwhile still finds its SA).
    const retired: number[] = [];
    for (const dst of this.tables.destinations()) {
      const p = this.protectionFor(dst, retired);
      if (p) this.tables.set(dst, p);
      else this.tables.forget(dst);
    }
    for (const id of retired) this.keys.retire(id);
    if (this.tables.destinations().length > 0)
      this.refreshTimer = this.clock.setTimer(TABLE_REFRESH_MS, () => this.refresh());
  }

  /**
   * The SAs that protect dst now, without side effects beyond keying (no discovery, no counters); undefined: JS
   * decides.
   */
  private protectionFor(dst: number, retired: number[]): Protection | undefined {
    if (this.careOf === ipToU32(this.homeAddress)) return undefined;
    const layers = this.paths.layersFor(dst);
    if (this.leavesPlain(dst, layers)) return PLAIN;
    const hopsOnly = this.nextHopOnly(dst, layers);
    if (!hopsOnly && (layers.stage !== 'end' || !layers.end)) return undefined;
    const src = u32ToIp(this.careOf);
    const wraps: number[] = [];
    for (const hop of [...layers.hops].reverse()) {
      const r = this.keys.outbound(
        {
          peer: sgwName(hop),
          src,
          dst: hop.outside,
          role: 'nexthop',
          ah: this.suites.nextHopAh,
          coverage: this.suites.coverage,
        },
        retired,
      );
      if (!r.ok) return undefined;
      wraps.push(r.id);
    }
    if (hopsOnly) return { sa: 0, wraps };
    const end = layers.end!;
    const r = this.keys.outbound(
      { peer: sgwName(end), src, dst: end.outside, role: 'end', esp: this.suites.esp, ah: this.suites.endAh },
      retired,
    );
    return r.ok ? { sa: r.id, wraps } : undefined;
  }

  /**
   * Whether the datagrams to `dst` leave plain for good: usual IP (§3.5) to a destination no SGW lies on the way to,
   * so no failure message can change how they are sent (one about a packet the engine sent alone would not be
   * recognised as ours).
   */
  private leavesPlain(dst: number, layers: Layers): boolean {
    return layers.stage === 'plain' && layers.hops.length === 0 && this.map.path(this.careOf, dst).length === 0;
  }

  /**
   * Whether the datagrams to `dst` leave under the visited site's Next-hop layers alone for good: usual IP to a host
   * outside every SGW-protected network (§3.5 "Mobile IP without IPsec"), with a Next-hop layer for every SGW on the
   * way already, so no End-End peer can come of it and no SGW on the way can ask for another layer (code 4) about the
   * plain datagram it sees (which the engine sending alone would leave unrecognised); a refusal (code 5) quotes one of
   * the compiled layers, which quotesCompiled recognises.
   */
  private nextHopOnly(dst: number, layers: Layers): boolean {
    if (layers.stage !== 'nexthop-plain' || layers.hops.length === 0 || this.map.protectingSgw(dst)) return false;
    return this.map.path(this.careOf, dst).every((c) => layers.hops.includes(c.sgw));
  }

  /** What the engine's loops punted with context: judged as the JS path judges the same outcome of engine.process. */
  private onEnginePunt(p: { packet: Uint8Array; reason: ReasonName; sa: number }): void {
    if (p.reason === 'rekey_due') {
      // An event, no packet: a compiled SA reached its soft limit; the tables move to a fresh key while it seals on.
      this.tally.add('rekey_due');
      this.refreshNow();
      return;
    }
    if (p.reason === 'rekey') {
      // A compiled SA carried its packet key's share (kpRotationPackets): move the tables to fresh keys now, and
      // send the datagram the engine held back the way an application's datagram goes.
      this.tally.add('rekey');
      this.refreshNow();
      this.host.send(p.packet);
      return;
    }
    // An opened datagram outside the SA's selectors, or one addressed to us: what INBOUND would have DELIVERed.
    const opened = p.sa !== 0 && (p.reason === 'selector' || (p.reason as string) === 'deliver_local');
    const outcome = {
      verdict: opened ? Verdict.DELIVER : Verdict.PUNT,
      reason: opened ? Reason.none : (Reason[p.reason] ?? Reason.none),
      sa: p.sa,
      packet: p.packet,
      tag: { kind: 'in' } as Tag,
    };
    const jobs = this.handle([outcome]);
    // A new key's first packet goes on at once (its SA just went in); the rest waits for the tick's batch.
    if (p.reason === 'unknown_key') this.pipeline.runNow(jobs);
    else for (const job of jobs) this.pipeline.push(job);
  }

  /**
   * Whether a failure message quotes a packet the engine sealed alone with one of the compiled SAs: the quote starts
   * with that SA's outer addresses, its SKIP header (the wrapped Kp), its SPI and a sequence number it has used
   * lately — what only a packet it really sent carries (the JS path's sent-packet record cannot see these).
   */
  private quotesCompiled(quote: Uint8Array): boolean {
    return this.keys.quotedOutbound(quote, this.tables.saIds()) !== undefined;
  }

  private remember(dst: number, packet: Uint8Array): void {
    const now = this.clock.now();
    const list = (this.recent.get(dst) ?? []).filter((p) => now - p.at <= RESEND_WINDOW_MS).slice(-(RESEND_MAX - 1));
    list.push({ packet: packet.slice(), at: now });
    this.recent.set(dst, list);
  }

  // ── receiving ────────────────────────────────────────────────────────────────────────────

  private onInput(packet: Uint8Array, ctx: PacketContext): HookResult {
    const header = readableHeader(packet, this.tally);
    if (!header) return 'consumed';
    if (isFragment(header)) {
      this.inFragments.reinject(this.host, packet, header, ctx.iface);
      return 'consumed';
    }
    if (header.protocol !== IPPROTO_SKIP) return 'pass';
    if (header.dst !== this.careOf && header.dst !== ipToU32(this.homeAddress)) return 'pass';
    this.pipeline.push({ op: Op.INBOUND, packet: packet.slice(), tag: { kind: 'in' } });
    return 'consumed';
  }

  private handle(outcomes: EngineOutcome<Tag>[]): Job[] {
    const next: Job[] = [];
    for (const o of outcomes) {
      if (o.tag.kind === 'out') {
        if (o.verdict !== Verdict.FORWARD) this.tally.add(`drop_engine_${reasonName[o.reason]}`);
        else if (o.tag.wraps.length > 0) {
          // The inner layers reach SGWs further on once the outer ones are stripped: quotable too.
          this.sent.record(o.packet);
          next.push({
            op: Op.WRAP,
            packet: o.packet,
            arg0: o.tag.wraps[0],
            tag: { kind: 'out', wraps: o.tag.wraps.slice(1) },
          });
        } else this.emit(o.packet);
        continue;
      }
      // An End-End layer's datagram outside its selectors (the engine delivers only the applications' own) is
      // judged here as a DELIVER is.
      if (o.verdict === Verdict.DELIVER || (o.verdict === Verdict.PUNT && o.reason === Reason.selector && o.sa !== 0)) {
        // Only an End-End layer speaks for what it carries; a bare Next-hop layer ends at SGWs.
        // The HA's tunnel is opened only here, inside an End-End layer; bare IP-in-IP from the wire proves nothing.
        const meta = this.keys.meta(o.sa);
        if (meta?.role !== 'end') this.tally.add('drop_not_end_end');
        else if (!this.tunnel.open(o.packet) && !this.failureFromPeer(o.packet, meta.src)) this.host.inject(o.packet);
      } else if (o.verdict === Verdict.PUNT && o.reason === Reason.unknown_key) {
        const r = this.keys.inbound(o.packet, this.suites.coverage);
        const sender = parseIpv4(o.packet, 0);
        if (r.ok) next.push({ op: Op.INBOUND, packet: o.packet, tag: { kind: 'in', firstOfKey: true } });
        else if (r.reason === 'unknown_certificate' && sender.ok && this.map.sgwByAddress(sender.header.src)) {
          // SGWs are named by their address: ask the sender for its certificate, then open the packet.
          this.tally.add('held_for_certificate');
          const job: Job = { op: Op.INBOUND, packet: o.packet, tag: o.tag };
          this.discovery.fetch(
            sgwName(this.map.sgwByAddress(sender.header.src)!),
            u32ToIp(sender.header.src),
            (outcome) => (outcome.ok ? this.pipeline.push(job) : this.tally.add(`drop_${outcome.reason}`)),
          );
        } else this.tally.add(`drop_keying_${r.reason}`);
      } else {
        this.tally.add(`drop_engine_${reasonName[o.reason]}`);
        if (o.reason === Reason.replay && o.tag.firstOfKey) this.refuseRestoredKey(o.packet);
      }
    }
    return next;
  }

  /** The sender's key fell under a floor this SMN restored at start (src/roles/common/restored-key.ts): code 0. */
  private refuseRestoredKey(datagram: Uint8Array): void {
    const outer = parseIpv4(datagram, 0);
    if (!outer.ok) return;
    this.tally.add('refused_restored_key');
    const [from, to] = [u32ToIp(this.careOf), u32ToIp(outer.header.src)];
    sendFailure(this.host, this.limiter, this.tally, from, to, Icmp40Code.badSpi, datagram);
  }

  private emit(packet: Uint8Array): void {
    this.sent.record(packet);
    this.host.send(packet, { bypassHooks: true });
  }

  /**
   * A failure message the End-End peer sent in its own name inside its SA: authenticated, so trusted without quoting a
   * recent send (it may be about an older packet); the path rules still apply. False when `packet` is anything else.
   */
  private failureFromPeer(packet: Uint8Array, peerAddress: string): boolean {
    const failure = readFailure(packet);
    if (!failure || failure.from !== ipToU32(peerAddress)) return false;
    this.tally.add('failure_authenticated');
    this.applyFailure(failure);
    return true;
  }

  private onDeliver(packet: Uint8Array): void {
    const failure = readFailure(packet);
    if (!failure) return;
    if (failure.code === Icmp40Code.badSpi) {
      if (spendRefusedKey(this.keys, failure, this.tally)) this.refreshNow();
      return;
    }
    // A plain failure message steers only if it quotes a packet this SMN sent lately (its SKIP key, SPI and sequence).
    if (!this.sent.quotes(failure.quote) && !this.quotesCompiled(failure.quote)) {
      this.tally.add('failure_quote_not_sent');
      return;
    }
    this.applyFailure(failure);
  }

  private applyFailure(failure: ReceivedFailure): void {
    const { changed, note } = this.paths.onFailure(failure);
    this.tally.add(note);
    for (const dst of changed) {
      this.tables.forget(dst);
      const now = this.clock.now();
      const again = (this.recent.get(dst) ?? []).filter((p) => now - p.at <= RESEND_WINDOW_MS);
      this.recent.delete(dst);
      for (const p of again) {
        this.tally.add('resent_after_failure');
        this.remember(dst, p.packet);
        this.protect(p.packet, dst, (job) => this.pipeline.push(job));
      }
    }
  }
}
