/*
 * LinuxNetwork: the Network interface (../types.ts) on real Linux network namespaces, so the roles
 * run unchanged with real links, real ARP and real applications (ping, iperf3) in the hosts.
 *
 * Two kinds of host
 *   role host       (default) a host a role runs on (SGW, SMN, HA). Its packet logic — hooks, local delivery,
 *                   forwarding, drop counters — is HostCore's (../host-core.ts), as MemoryHost's, behind I/O
 *                   loops on the role's native engine (HostOptions.engine; else an empty one that punts
 *                   everything): what the role compiled into its tables never reaches JS.
 *   plain host      (HostOptions.plain) a host without a role — a correspondent, a router, an application
 *                   server — on its kernel's own stack: kernel forwarding, routes, ARP, ping, real sockets
 *                   (./plain-host.ts). Only its veths and routes are made here.
 *
 * How the Host contract maps to the kernel (both kinds, ./namespace-host.ts)
 *   host            a namespace `<prefix>-<host>` (sysctls: rp_filter 0, ping_group_range open for the
 *                   unprivileged ping; forwarding on for a role host's proxy ARP).
 *   link            a bridge `br<n>` in the lab's switch namespace `<prefix>-sw` (never the root one);
 *                   'p2p' is a bridge that takes two ports. Real links add no delay of their own
 *                   (latencyMs is only reported) and no loss (setLoss refuses: use MemoryNetwork).
 *   interface       a veth pair: `<name>` in the host (address via `ip addr`), its peer a bridge port.
 *   routes          the JS route table is mirrored into the kernel's main table (`ip route replace`).
 *   addLocalAddress an address on lo (applications can bind it; like any host, the kernel answers
 *                   ARP for it — an SMN away proxies its home address on the visited link anyway).
 *   setProxy        `ip neigh add proxy ADDRESS dev IFACE`; the other hosts on the link forget their
 *                   neighbour entry for ADDRESS (in place of the gratuitous ARP of RFC 5944 §4.6).
 *   moveInterface   the port moves to the other bridge, the address is replaced, routes through the
 *                   interface are removed, stale neighbour entries for the address are flushed.
 *   captures        one dumpcap in the switch namespace on every bridge port; a frame counts for the
 *                   port whose host sent it (source MAC), its receiver is the owner of the destination MAC.
 *   clock           the wall clock with real timers.
 *
 * A role host's data path (./interface-loops.ts)
 *   from a link     every IPv4 frame arriving on the interface is redirected at tc ingress (u32 + mirred) into a
 *                   TUN `t-<name>` of its own, read by the interface's I/O loop: OUTBOUND with the interface's
 *                   policy table (dataPath.tableOf(name)). What the tables decide is carried out natively
 *                   (forwarded, sealed, opened and delivered by the kernel's routes); a punt with engine context
 *                   goes to the role's onEnginePunt handler, any other to JS with its arrival interface → input
 *                   hooks (ctx.iface, ctx.link). The kernels' own multicast (IGMP reports) is left out, as
 *                   MemoryNetwork has none. The kernel's IP stack never sees a frame of a role host's links.
 *   send / forward  output hooks, then the JS route table, then the raw IP_HDRINCL socket ('raw' inject): the
 *                   kernel routes it by its table and resolves the next hop with ARP. Packets over the link's
 *                   MTU (1500) leave in fragments; a sealed one with DF that the link refuses is answered with ICMP
 *                   3/4 carrying the MTU that fits, when the datagram it carries had DF (the loop builds it).
 *   inject          the JS input path directly (as MemoryHost: queued, not re-entrant).
 *   local delivery  onDeliver handlers; ICMP echo, TCP and UDP to port 5201 (the applications'
 *                   traffic) are also written into the TUN `t-local`, where the kernel delivers them
 *                   to its sockets (the destination is one of the host's kernel addresses).
 *   applications    run as uid 65534 (appCommand()); a rule `uidrange 65534 lookup 50` sends their
 *                   packets into `t-local`, whose loop runs OUTBOUND with the table dataPath.tableOf(APPS_PORT),
 *                   so what the role has not compiled takes the host's send() path: output hooks first (an
 *                   SMN's traffic is protected by its role like the lab's own probes).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { MAX_PACKET } from '../../engine/io.js';
import type { NativeEngine } from '../../engine/native.js';
import { u32ToIp } from '../../wire/addr.js';
import { IpProto } from '../../wire/ipv4.js';
import { ICMP_HEADER_BYTES, IcmpType } from '../echo.js';
import { LinkCore, NetworkCore } from '../host-core.js';
import { NetnsSession, randomSuffix } from '../netns.js';
import type { CapturedPacket, Clock, HostOptions, LinkKind, LinkOptions, LossModel, Timer } from '../types.js';
import { APP_MTU, ingressRedirectArgs, InterfaceLoops, type DataPathStats } from './interface-loops.js';
import { NamespaceHost, type NamespaceInterface, type NamespaceWorld, type Port } from './namespace-host.js';
import { PcapngReader } from './pcapng.js';
import { PlainHost } from './plain-host.js';

/** The uid applications run as in the lab's hosts; their packets take the host's send() path. */
export const APP_UID = 65534;
/** The port iperf3 listens on; UDP to it is handed to the kernel, other UDP stays with the roles. */
export const APP_PORT = 5201;

/** A command line that runs `argv` as the lab's application uid. */
export function asAppUser(argv: readonly string[]): string[] {
  return ['setpriv', `--reuid=${APP_UID}`, `--regid=${APP_UID}`, '--clear-groups', ...argv];
}
const APP_TABLE = 50;
const LOCAL_TUN = 't-local';
/** The lab's links have Ethernet's default MTU, as a deployment's do (the applications see APP_MTU). */
export const LINK_MTU = 1500;
/**
 * A role host's loops poll this long after a packet before they sleep (docs/engine.md §9 pollMicros): a §4.5.2
 * stream crosses three of them on two vCPUs, and each sleeping hop paid a cross-CPU wakeup per batch. Measured
 * alternately on this VM (`mipsec lab --only 4.5.2,spi`): 50 µs 2,054 / 1,834 / 1,661 / 1,830 Mbit/s against 0 µs
 * 1,418 / 1,496 / 1,464 / 1,462 (200 µs: 1,676 / 1,764).
 */
const ROLE_POLL_MICROS = 50;
/**
 * dumpcap reports "Capturing on" before it opens the interfaces, one after another (tens of ms each with a 32 MiB
 * buffer): the capture is live once every port has a packet socket in the switch namespace (/proc/net/packet) and
 * the last one has settled.
 */
const CAPTURE_OPEN_TIMEOUT_MS = 15_000;
const CAPTURE_POLL_MS = 20;
/**
 * After a port's socket is bound libpcap still maps its ring and sets its filter, which flushes what the socket
 * queued (tens of ms with a 32 MiB buffer): the last port opened is live this long after its socket appears.
 */
const CAPTURE_SETTLE_MS = 250;

/** The wall clock with real timers; close() cancels every pending one (roles' timers die with their network). */
export class RealClock implements Clock {
  private readonly pending = new Set<NodeJS.Timeout>();

  /** `onError` gets what a timer's callback throws (a role failing on a real network). */
  constructor(private readonly onError: (error: unknown) => void) {}

  now(): number {
    return Date.now();
  }

  setTimer(delayMs: number, run: () => void): Timer {
    const t = setTimeout(() => {
      this.pending.delete(t);
      try {
        run();
      } catch (error) {
        this.onError(error);
      }
    }, delayMs);
    this.pending.add(t);
    return {
      cancel: () => {
        clearTimeout(t);
        this.pending.delete(t);
      },
    };
  }

  close(): void {
    for (const t of this.pending) clearTimeout(t);
    this.pending.clear();
  }
}

export interface LinuxNetworkOptions {
  /** Namespace name prefix; default `mlab-<random>`. */
  prefix?: string;
  /** Called with every error a host hits while handling a packet (default: rethrown — a role crash ends the lab). */
  onError?: (error: unknown) => void;
}

export type LabHost = LinuxHost | PlainHost;

export class LinuxNetwork extends NetworkCore<LabHost, LinuxLink> implements NamespaceWorld {
  readonly clock = new RealClock((error) => this.onError(error));
  readonly session: NetnsSession;
  readonly switchNs: string;
  private readonly ports = new Map<string, Port>();
  private readonly dataPaths: InterfaceLoops[] = [];
  private readonly stoppers: (() => void)[] = [];
  private capture: { child: ChildProcess; ports: string } | undefined;
  private portCount = 0;
  private closed = false;
  readonly onError: (error: unknown) => void;

  constructor(options: LinuxNetworkOptions = {}) {
    super();
    this.session = new NetnsSession(options.prefix ?? `mlab-${randomSuffix()}`);
    this.onError =
      options.onError ??
      ((error) => {
        throw error;
      });
    this.session.onCleanup(
      'I/O loops and capture',
      async () => this.stopLoops(),
      () => this.stopLoops(),
    );
    this.switchNs = this.session.addNamespaceSync('sw');
    // The switch is a switch: with br_netfilter in the kernel, every bridged frame would also run the (empty) iptables
    // hooks there, the lab's cost on every hop of every stream (-e: a kernel without br_netfilter has no such keys).
    this.session.execSync(this.switchNs, 'sysctl', [
      '-q',
      '-e',
      '-w',
      'net.bridge.bridge-nf-call-iptables=0',
      'net.bridge.bridge-nf-call-ip6tables=0',
      'net.bridge.bridge-nf-call-arptables=0',
    ]);
  }

  /**
   * A role host (I/O loops on `options.engine`, or an empty engine) or, with `plain`, a host on the kernel's own stack.
   */
  addHost(name: string, options: HostOptions = {}): LabHost {
    this.assertNewHost(name);
    const role = name.replace(/[^A-Za-z0-9_.-]/g, '_');
    const ns = this.session.addNamespaceSync(role);
    const forwarding = options.forwarding ?? false;
    if (options.plain) {
      if (options.engine) throw new Error(`host '${name}': a plain host runs no role, so no engine`);
      return this.registerHost(
        new PlainHost(this, name, ns, forwarding, { linkMtu: LINK_MTU, appMtu: APP_MTU, asAppUser }),
      );
    }
    return this.registerHost(new LinuxHost(this, name, ns, forwarding, options.engine, options.kernelTunnel));
  }

  /** The role hosts (I/O loops, JS input path). */
  roleHosts(): LinuxHost[] {
    return this.hosts().filter((h): h is LinuxHost => h instanceof LinuxHost);
  }

  /** Stopped with the lab: a host's data path. */
  track(dataPath: InterfaceLoops): void {
    this.dataPaths.push(dataPath);
  }

  /** Run when the lab stops (before its namespaces go): e.g. a plain host's application agent. */
  onStop(stop: () => void): void {
    this.stoppers.push(stop);
  }

  /** Before any traffic: the captures run and every plain host's applications hold their ports. */
  async ready(): Promise<void> {
    await this.startCapture();
    await Promise.all(
      this.hosts()
        .filter((h): h is PlainHost => h instanceof PlainHost)
        .map((h) => h.appsReady()),
    );
  }

  addLink(name: string, options: LinkOptions = {}): LinuxLink {
    this.assertNewLink(name);
    const bridge = `br${this.links().length}`;
    this.session.ipSync(this.switchNs, [
      'link',
      'add',
      bridge,
      'mtu',
      String(LINK_MTU),
      'type',
      'bridge',
      'forward_delay',
      '0',
    ]);
    this.session.ipSync(this.switchNs, ['link', 'set', 'dev', bridge, 'up']);
    return this.registerLink(new LinuxLink(name, options.kind ?? 'multi', options.latencyMs ?? 0, bridge));
  }

  /** Starts (or restarts, when ports were added) the capture on every bridge port; resolves once dumpcap captures. */
  async startCapture(): Promise<void> {
    const names = [...this.ports.keys()].sort().join(',');
    if (this.capture && this.capture.ports === names) return;
    // The old dumpcap's sockets must be gone before the new one's are counted.
    await this.pauseCapture();
    const args = [
      'netns',
      'exec',
      this.switchNs,
      'dumpcap',
      '-q',
      // 32 MiB of kernel buffer per port: a stream the loops carry at full speed must not outrun the capture.
      '-B',
      '32',
      '-w',
      '-',
      ...[...this.ports.keys()].flatMap((p) => ['-i', p]),
    ];
    const child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.capture = { child, ports: names };
    const reader = new PcapngReader();
    child.stdout.on('data', (chunk: Buffer) => {
      const errorBefore = reader.error;
      for (const frame of reader.push(chunk)) this.onFrame(frame.iface, frame.timeMs, frame.data);
      if (errorBefore === undefined && reader.error)
        this.onError(new Error(`capture: ${reader.error}; frames after it are not recorded`));
    });
    let stderr = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`dumpcap did not start capturing within 10 s: ${stderr.trim()}`)),
        10_000,
      );
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (/Capturing on/.test(stderr)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`dumpcap: ${err.message} (install tshark, which brings dumpcap)`));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`dumpcap exited (${code}) before capturing: ${stderr.trim()}`));
      });
    });
    await this.portsCaptured([...this.ports.keys()], () => stderr);
  }

  /** Resolves once every port of `names` has a packet socket open (dumpcap's: the switch namespace runs no other). */
  private async portsCaptured(names: string[], stderr: () => string): Promise<void> {
    const links = await this.session.ipJson<{ ifname: string; ifindex: number }>(this.switchNs, ['link', 'show']);
    const wanted = new Set(links.filter((l) => names.includes(l.ifname)).map((l) => l.ifindex));
    const until = Date.now() + CAPTURE_OPEN_TIMEOUT_MS;
    for (;;) {
      const open = new Set(
        this.session
          .execSync(this.switchNs, 'cat', ['/proc/net/packet'])
          .trim()
          .split('\n')
          .slice(1)
          .map((line) => Number(line.trim().split(/\s+/)[4])),
      );
      const missing = [...wanted].filter((i) => !open.has(i));
      if (missing.length === 0) {
        await new Promise((r) => setTimeout(r, CAPTURE_SETTLE_MS));
        return;
      }
      if (Date.now() > until)
        throw new Error(
          `dumpcap opened ${wanted.size - missing.length} of ${wanted.size} ports within ` +
            `${CAPTURE_OPEN_TIMEOUT_MS / 1000} s: ${stderr().trim()}`,
        );
      await new Promise((r) => setTimeout(r, CAPTURE_POLL_MS));
    }
  }

  /** Stops the capture until the next startCapture(), once what dumpcap wrote so far has been read. */
  async pauseCapture(): Promise<void> {
    const capture = this.capture;
    if (!capture) return;
    this.capture = undefined;
    const exited = new Promise((resolve) => capture.child.once('close', resolve));
    capture.child.kill('SIGTERM');
    await exited;
  }

  /** Removes every namespace, device and process of the lab. */
  async close(): Promise<void> {
    this.closed = true;
    this.clock.close();
    await this.session.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** An application command line inside a host, run as the unprivileged lab uid. */
  appCommand(host: string, argv: readonly string[]): string[] {
    return ['ip', 'netns', 'exec', this.host(host).ns, ...asAppUser(argv)];
  }

  /** A veth pair: `iface` in the host's namespace, its peer a port of `link`'s bridge. Returns the port. */
  attach(host: NamespaceHost, iface: string, linkName: string): Port {
    const link = this.link(linkName);
    link.checkRoom();
    const name = `p${this.portCount++}`;
    this.session.ipSync(this.switchNs, [
      'link',
      'add',
      name,
      'mtu',
      String(LINK_MTU),
      'type',
      'veth',
      'peer',
      'name',
      iface,
      'netns',
      host.ns,
    ]);
    this.session.ipSync(this.switchNs, ['link', 'set', 'dev', name, 'master', link.bridge, 'up']);
    const info = JSON.parse(this.session.ipSync(host.ns, ['-j', 'link', 'show', 'dev', iface])) as {
      address: string;
    }[];
    const port: Port = { name, host, iface, mac: info[0].address, link };
    this.ports.set(name, port);
    link.ports.add(port);
    return port;
  }

  move(port: Port, linkName: string): void {
    const link = this.link(linkName);
    if (port.link === link) return;
    link.checkRoom();
    this.session.ipSync(this.switchNs, ['link', 'set', 'dev', port.name, 'master', link.bridge]);
    port.link.ports.delete(port);
    port.link = link;
    link.ports.add(port);
  }

  /** The hosts on `link` (except `except`) forget their neighbour entry for `address`. */
  forgetNeighbour(link: Port['link'], address: string, except: NamespaceHost): void {
    for (const port of link.ports) {
      if (port.host === except) continue;
      this.session.ipSync(port.host.ns, ['neigh', 'flush', 'to', address, 'dev', port.iface]);
    }
  }

  private onFrame(portName: string, timeMs: number, data: Uint8Array): void {
    const port = this.ports.get(portName);
    if (!port || data.length < 14 || data[12] !== 0x08 || data[13] !== 0x00) return;
    const src = macText(data, 6);
    if (src !== port.mac) return; // the copy leaving the switch towards this port's host
    const dst = macText(data, 0);
    const to = [...port.link.ports].find((p) => p.mac === dst);
    port.link.record({
      time: timeMs,
      link: port.link.name,
      from: `${port.host.name}/${port.iface}`,
      to: to && `${to.host.name}/${to.iface}`,
      fate: to ? 'delivered' : 'unresolved',
      packet: data.slice(14),
    });
  }

  private stopLoops(): void {
    this.closed = true;
    this.clock.close();
    this.capture?.child.kill('SIGTERM');
    this.capture = undefined;
    for (const stop of this.stoppers.splice(0)) stop();
    for (const dataPath of this.dataPaths.splice(0)) dataPath.stop();
  }
}

function macText(data: Uint8Array, at: number): string {
  return Array.from(data.subarray(at, at + 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

export class LinuxLink extends LinkCore {
  readonly ports = new Set<Port>();

  constructor(
    name: string,
    kind: LinkKind,
    latencyMs: number,
    readonly bridge: string,
  ) {
    super(name, kind, latencyMs);
  }

  setLoss(loss: LossModel | undefined): void {
    if (loss !== undefined)
      throw new Error(`link '${this.name}': loss injection is not available on real links (use the in-memory network)`);
  }

  /** In time order: dumpcap may hand over the frames of different ports out of time order. */
  override captures(): readonly CapturedPacket[] {
    return [...super.captures()].sort((a, b) => a.time - b.time);
  }

  checkRoom(): void {
    this.assertRoomFor(this.ports.size);
  }
}

interface LinuxInterface extends NamespaceInterface {
  port: Port;
}

/**
 * The name the host's applications' TUN has among its data path's ports (tableOf, EnginePunt.iface): the one an SMN
 * compiles its applications' policies for (src/roles/smn.ts APPLICATION_PORT), as on a daemon's host.
 */
export const APPS_PORT = 'mipsec-apps';

/**
 * A role host: every IPv4 packet of its interfaces is read by an I/O loop on the role's engine (or an empty one),
 * and what the engine punts takes the host's input path in JS (HostCore's) — see the file comment.
 */
export class LinuxHost extends NamespaceHost<LinuxInterface> {
  readonly dataPath: InterfaceLoops;

  constructor(
    private readonly network: LinuxNetwork,
    name: string,
    ns: string,
    forwarding: boolean,
    engine: NativeEngine | undefined,
    /** The home agent's tunnel the interface loops peel for the kernel (HostOptions.kernelTunnel). */
    private readonly kernelTunnel?: { from: string; to: string; protocol?: number },
  ) {
    super(network, name, ns, forwarding);
    const s = network.session;
    s.execSync(ns, 'sysctl', [
      '-q',
      '-w',
      'net.ipv4.ip_forward=1',
      'net.ipv4.conf.all.rp_filter=0',
      'net.ipv4.conf.default.rp_filter=0',
      'net.ipv4.ping_group_range=0 2147483647',
    ]);
    this.dataPath = new InterfaceLoops({
      engine,
      netns: ns,
      onError: (error) => network.onError(error),
      isLocalAddress: (address) => this.isLocal(u32ToIp(address)),
      plainByKernel: true,
      transport: { pollMicros: ROLE_POLL_MICROS },
    });
    network.track(this.dataPath);
    // The applications' packets take the host's send() path (output hooks first); raw receivers on lo see nothing.
    this.dataPath.start({ iface: APPS_PORT, tun: LOCAL_TUN, mtu: APP_MTU, bindInterface: 'lo' }, (packet) =>
      this.send(packet),
    );
    s.ipSync(ns, ['link', 'set', 'dev', LOCAL_TUN, 'up']);
    // What the loop hands back to the kernel from the applications' TUN has the host's own addresses as sources.
    s.execSync(ns, 'sysctl', ['-q', '-w', `net.ipv4.conf.${LOCAL_TUN}.accept_local=1`]);
    s.ipSync(ns, ['route', 'replace', 'default', 'dev', LOCAL_TUN, 'table', String(APP_TABLE)]);
    s.ipSync(ns, ['rule', 'add', 'pref', '100', 'uidrange', `${APP_UID}-${APP_UID}`, 'lookup', String(APP_TABLE)]);
  }

  addInterface(name: string, link: string, cidr: string): void {
    const { port, address, prefix } = this.attachInterface(name, link, cidr, LINK_MTU);
    const s = this.network.session;
    // What the host sends fits the veth (LINK_MTU) and the peer's interface TUN (MAX_PACKET).
    const iface: LinuxInterface = { name, port, address, prefix, mtu: Math.min(LINK_MTU, MAX_PACKET) };
    const tun = `t-${name}`.slice(0, 15);
    this.dataPath.start({ iface: name, tun, mtu: MAX_PACKET, kernelTunnel: this.kernelTunnel }, (packet) =>
      this.receive(packet, iface),
    );
    s.ipSync(this.ns, ['link', 'set', 'dev', tun, 'up']);
    s.execSync(this.ns, 'tc', ['qdisc', 'add', 'dev', name, 'ingress']);
    s.execSync(this.ns, 'tc', ingressRedirectArgs(name, tun));
    this.registerInterface(iface);
  }

  /** The I/O loops' counters, summed over the host's ports (fastPath, punted, puntReasons, …). */
  ioStats(): DataPathStats {
    return this.dataPath.stats();
  }

  /** The raw socket: the kernel routes the packet by its (mirrored) table and resolves the next hop with ARP. */
  protected override transmit(
    packet: Uint8Array,
    _iface: LinuxInterface,
    _nextHop: number,
    carries?: Uint8Array,
  ): boolean {
    return this.dataPath.inject(APPS_PORT, [{ packet, via: 'raw', carries }]);
  }

  /** The applications' traffic also goes to the kernel's sockets. */
  protected override delivered(packet: Uint8Array): void {
    if (isApplicationTraffic(packet)) this.dataPath.inject(APPS_PORT, [{ packet, via: 'tun' }]);
  }
}

/**
 * What the kernel's sockets in a lab host take: ICMP echo, TCP, UDP to or from the iperf3 port, and an ICMP error
 * (unreachable, time exceeded) about one of those — "fragmentation needed" from an SGW is how the host's TCP learns
 * the path MTU (as a daemon's host hands its applications everything for their address).
 */
export function isApplicationTraffic(packet: Uint8Array, quoted = false): boolean {
  if (packet.length < 20) return false;
  const ihl = (packet[0] & 0x0f) * 4;
  const proto = packet[9];
  if (proto === IpProto.TCP) return true;
  if (packet.length < ihl + 4) return false;
  if (proto === IpProto.ICMP) {
    const type = packet[ihl];
    if (type === IcmpType.ECHO_REQUEST || type === IcmpType.ECHO_REPLY) return true;
    // The quote follows the ICMP header: the datagram's header and its first 8 bytes (RFC 792). One level deep only.
    return (
      !quoted &&
      (type === IcmpType.DEST_UNREACHABLE || type === IcmpType.TIME_EXCEEDED) &&
      isApplicationTraffic(packet.subarray(ihl + ICMP_HEADER_BYTES), true)
    );
  }
  if (proto === IpProto.UDP) {
    const srcPort = (packet[ihl] << 8) | packet[ihl + 1];
    const dstPort = (packet[ihl + 2] << 8) | packet[ihl + 3];
    return srcPort === APP_PORT || dstPort === APP_PORT;
  }
  return false;
}
