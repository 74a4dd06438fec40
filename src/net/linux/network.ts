/*
 * LinuxNetwork: the Network interface (../types.ts) on real Linux network namespaces, so the roles
 * run unchanged with real links, real ARP and real applications (ping, iperf3) in the hosts.
 *
 * How the Host contract maps to the kernel
 *   host            a namespace `<prefix>-<host>` (sysctls: forwarding on for proxy ARP, rp_filter 0,
 *                   ping_group_range open for the unprivileged ping). The host's packet logic — hooks, local
 *                   delivery, forwarding, drop counters — is HostCore's (../host-core.ts), as MemoryHost's; the
 *                   kernel only carries frames, answers ARP, and runs the applications.
 *   link            a bridge `br<n>` in the lab's switch namespace `<prefix>-sw` (never the root one);
 *                   'p2p' is a bridge that takes two ports. Real links add no delay of their own
 *                   (latencyMs is only reported) and no loss (setLoss refuses: use MemoryNetwork).
 *   interface       a veth pair: `<name>` in the host (address via `ip addr`), its peer a bridge port.
 *   from a link     every IPv4 frame arriving on the interface is redirected at tc ingress
 *                   (u32 + mirred) into a TUN `t-<name>` of its own, which an IoLoop with an empty
 *                   engine reads: OUTBOUND finds no policy and punts the packet untouched to JS, which
 *                   knows the arrival interface from the TUN → input hooks (ctx.iface, ctx.link).
 *                   The kernels' own multicast (IGMP reports) is left out, as MemoryNetwork has none.
 *                   The kernel's IP stack never sees it, so it never forwards, answers or decrements TTL.
 *   send / forward  output hooks, then the JS route table (mirrored into the kernel's main table with
 *                   `ip route replace`), then the IoLoop's raw IP_HDRINCL socket ('raw' inject): the
 *                   kernel routes it by that table and resolves the next hop with ARP. Packets over
 *                   3520 bytes (what the peer's TUN reads) leave in fragments.
 *   inject          the JS input path directly (as MemoryHost: queued, not re-entrant).
 *   local delivery  onDeliver handlers; ICMP echo, TCP and UDP to port 5201 (the applications'
 *                   traffic) are also written into the TUN `t-local`, where the kernel delivers them
 *                   to its sockets (the destination is one of the host's kernel addresses).
 *   applications    run as uid 65534 (appCommand()); a rule `uidrange 65534 lookup 50` sends their
 *                   packets into `t-local`, so they take the host's send() path: output hooks first
 *                   (an SMN's traffic is protected by its role like the lab's own probes).
 *   addLocalAddress an address on lo (applications can bind it; like any host, the kernel answers
 *                   ARP for it — an SMN away proxies its home address on the visited link anyway).
 *   setProxy        `ip neigh add proxy ADDRESS dev IFACE`; the other hosts on the link forget their
 *                   neighbour entry for ADDRESS (in place of the gratuitous ARP of RFC 5944 §4.6).
 *   moveInterface   the port moves to the other bridge, the address is replaced, routes through the
 *                   interface are removed, stale neighbour entries for the address are flushed.
 *   captures        one dumpcap in the switch namespace on every bridge port; a frame counts for the
 *                   port whose host sent it (source MAC), its receiver is the owner of the destination MAC.
 *   clock           the wall clock with real timers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createEngine } from '../../engine/index.js';
import { IoLoop, type PuntedPacket } from '../../engine/io.js';
import { NativeEngine } from '../../engine/native.js';
import { ipToU32, u32ToIp, type Prefix } from '../../wire/addr.js';
import { IpProto } from '../../wire/ipv4.js';
import { HostCore, LinkCore, NetworkCore, parseCidr, prefixString } from '../host-core.js';
import { CommandError, NetnsSession, randomSuffix } from '../netns.js';
import type { CapturedPacket, Clock, HostOptions, LinkKind, LinkOptions, LossModel, Timer } from '../types.js';
import { PcapngReader } from './pcapng.js';

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
/** Room for the protocol layers on the lab's links: nothing is ever too big for a veth. */
const LINK_MTU = 9000;
const IFACE_TUN_MTU = 3520;
/** Applications see this MTU: the End-End layer and next-hop layers fit in what the roles send. */
const APP_MTU = 1300;
/** dumpcap reports "Capturing on" before every interface is open. */
const CAPTURE_START_MS = 300;
const ICMP_ECHO_REPLY = 0;
const ICMP_ECHO_REQUEST = 8;

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
    return { cancel: () => {
      clearTimeout(t);
      this.pending.delete(t);
    } };
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

interface Port {
  /** Bridge port name in the switch namespace. */
  name: string;
  host: LinuxHost;
  iface: string;
  mac: string;
  link: LinuxLink;
}

export class LinuxNetwork extends NetworkCore<LinuxHost, LinuxLink> {
  readonly clock = new RealClock((error) => this.onError(error));
  readonly session: NetnsSession;
  readonly switchNs: string;
  private readonly ports = new Map<string, Port>();
  private readonly loops: { loop: IoLoop; engine: NativeEngine }[] = [];
  private capture: { child: ChildProcess; ports: string } | undefined;
  private portCount = 0;
  private closed = false;
  readonly onError: (error: unknown) => void;

  constructor(options: LinuxNetworkOptions = {}) {
    super();
    this.session = new NetnsSession(options.prefix ?? `mlab-${randomSuffix()}`);
    this.onError = options.onError ?? ((error) => { throw error; });
    this.session.onCleanup('I/O loops and capture', async () => this.stopLoops(), () => this.stopLoops());
    this.switchNs = this.session.addNamespaceSync('sw');
  }

  addHost(name: string, options: HostOptions = {}): LinuxHost {
    this.assertNewHost(name);
    const role = name.replace(/[^A-Za-z0-9_.-]/g, '_');
    const ns = this.session.addNamespaceSync(role);
    return this.registerHost(new LinuxHost(this, name, ns, options.forwarding ?? false));
  }

  addLink(name: string, options: LinkOptions = {}): LinuxLink {
    this.assertNewLink(name);
    const bridge = `br${this.links().length}`;
    this.session.ipSync(this.switchNs, ['link', 'add', bridge, 'mtu', String(LINK_MTU), 'type', 'bridge', 'forward_delay', '0']);
    this.session.ipSync(this.switchNs, ['link', 'set', 'dev', bridge, 'up']);
    return this.registerLink(new LinuxLink(name, options.kind ?? 'multi', options.latencyMs ?? 0, bridge));
  }

  /** Starts (or restarts, when ports were added) the capture on every bridge port; resolves once dumpcap captures. */
  async startCapture(): Promise<void> {
    const names = [...this.ports.keys()].sort().join(',');
    if (this.capture && this.capture.ports === names) return;
    this.capture?.child.kill('SIGTERM');
    const args = ['netns', 'exec', this.switchNs, 'dumpcap', '-q', '-w', '-', ...[...this.ports.keys()].flatMap((p) => ['-i', p])];
    const child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.capture = { child, ports: names };
    const reader = new PcapngReader();
    child.stdout!.on('data', (chunk: Buffer) => {
      const wasBroken = reader.error !== undefined;
      for (const frame of reader.push(chunk)) this.onFrame(frame.iface, frame.timeMs, frame.data);
      if (!wasBroken && reader.error) this.onError(new Error(`capture: ${reader.error}; frames after it are not recorded`));
    });
    let stderr = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`dumpcap did not start capturing within 10 s: ${stderr.trim()}`)), 10_000);
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (/Capturing on/.test(stderr)) {
          clearTimeout(timer);
          setTimeout(resolve, CAPTURE_START_MS);
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

  /** Starts an I/O loop in `ns` whose TUN punts every packet to `onPacket`. */
  startTun(ns: string, tun: string, mtu: number, onPacket: (packet: Uint8Array) => void): IoLoop {
    const engine = createEngine('native');
    if (!(engine instanceof NativeEngine)) throw new Error('the Linux lab needs the native addon (npm rebuild)');
    const loop = IoLoop.start({
      engine, netns: ns, tun: { name: tun, mtu, offload: false }, raw: true,
      onPunt: (packets: PuntedPacket[]) => {
        if (this.closed) return;
        for (const p of packets) {
          try {
            onPacket(p.packet.slice());
          } catch (error) {
            this.onError(error);
          }
        }
      },
    });
    this.loops.push({ loop, engine });
    return loop;
  }

  /** A veth pair: `iface` in the host's namespace, its peer a port of `link`'s bridge. Returns the port. */
  attach(host: LinuxHost, iface: string, link: LinuxLink): Port {
    link.checkRoom();
    const name = `p${this.portCount++}`;
    this.session.ipSync(this.switchNs, ['link', 'add', name, 'mtu', String(LINK_MTU), 'type', 'veth', 'peer', 'name', iface, 'netns', host.ns]);
    this.session.ipSync(this.switchNs, ['link', 'set', 'dev', name, 'master', link.bridge, 'up']);
    const info = JSON.parse(this.session.ipSync(host.ns, ['-j', 'link', 'show', 'dev', iface])) as { address: string }[];
    const port: Port = { name, host, iface, mac: info[0].address, link };
    this.ports.set(name, port);
    link.ports.add(port);
    return port;
  }

  move(port: Port, link: LinuxLink): void {
    if (port.link === link) return;
    link.checkRoom();
    this.session.ipSync(this.switchNs, ['link', 'set', 'dev', port.name, 'master', link.bridge]);
    port.link.ports.delete(port);
    port.link = link;
    link.ports.add(port);
  }

  /** The hosts on `link` (except `except`) forget their neighbour entry for `address`. */
  forgetNeighbour(link: LinuxLink, address: string, except: LinuxHost): void {
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
      time: timeMs, link: port.link.name, from: `${port.host.name}/${port.iface}`,
      to: to && `${to.host.name}/${to.iface}`, fate: to ? 'delivered' : 'unresolved', packet: data.slice(14),
    });
  }

  private stopLoops(): void {
    this.closed = true;
    this.clock.close();
    this.capture?.child.kill('SIGTERM');
    this.capture = undefined;
    for (const { loop, engine } of this.loops.splice(0)) {
      loop.stop();
      engine.close();
    }
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
    if (loss !== undefined) throw new Error(`link '${this.name}': loss injection is not available on real links (use the in-memory network)`);
  }

  /** In time order: dumpcap may hand over the frames of different ports out of time order. */
  override captures(): readonly CapturedPacket[] {
    return [...super.captures()].sort((a, b) => a.time - b.time);
  }

  checkRoom(): void {
    this.assertRoomFor(this.ports.size);
  }
}

interface LinuxInterface {
  name: string;
  port: Port;
  address: number;
  prefix: Prefix;
  mtu: number;
}

export class LinuxHost extends HostCore<LinuxInterface> {
  private readonly local: IoLoop;
  private readonly proxied = new Map<string, Set<string>>();

  constructor(
    private readonly network: LinuxNetwork,
    name: string,
    readonly ns: string,
    forwarding: boolean,
  ) {
    super(name, forwarding, network.clock);
    const s = network.session;
    s.execSync(ns, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0',
      'net.ipv4.ping_group_range=0 2147483647']);
    this.local = network.startTun(ns, LOCAL_TUN, APP_MTU, (packet) => this.send(packet));
    s.ipSync(ns, ['link', 'set', 'dev', LOCAL_TUN, 'up']);
    s.ipSync(ns, ['route', 'replace', 'default', 'dev', LOCAL_TUN, 'table', String(APP_TABLE)]);
    s.ipSync(ns, ['rule', 'add', 'pref', '100', 'uidrange', `${APP_UID}-${APP_UID}`, 'lookup', String(APP_TABLE)]);
  }

  addInterface(name: string, link: string, cidr: string): void {
    this.assertNewInterface(name);
    const { address, prefix } = parseCidr(cidr);
    const s = this.network.session;
    const port = this.network.attach(this, name, this.network.link(link));
    // The veths take 9000, but the peer's interface TUN reads at most IFACE_TUN_MTU a packet (the I/O loop's cap).
    const iface: LinuxInterface = { name, port, address, prefix, mtu: IFACE_TUN_MTU };
    const tun = `t-${name}`.slice(0, 15);
    this.network.startTun(this.ns, tun, IFACE_TUN_MTU, (packet) => {
      if (!isKernelMulticast(packet)) this.receive(packet, iface);
    });
    s.ipSync(this.ns, ['link', 'set', 'dev', tun, 'up']);
    s.execSync(this.ns, 'sysctl', ['-q', '-w', `net.ipv4.neigh.${name}.proxy_delay=0`]);
    s.ipSync(this.ns, ['addr', 'add', cidr, 'dev', name]);
    s.ipSync(this.ns, ['link', 'set', 'dev', name, 'mtu', String(LINK_MTU), 'up']);
    s.execSync(this.ns, 'tc', ['qdisc', 'add', 'dev', name, 'ingress']);
    s.execSync(this.ns, 'tc', ['filter', 'add', 'dev', name, 'ingress', 'protocol', 'ip', 'u32', 'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', tun]);
    this.registerInterface(iface);
  }

  moveInterface(name: string, link: string, cidr: string): void {
    const iface = this.iface(name);
    const { address, prefix } = parseCidr(cidr);
    const s = this.network.session;
    const target = this.network.link(link);
    for (const proxied of [...(this.proxied.get(name) ?? [])]) this.setProxy(proxied, name, false);
    this.network.move(iface.port, target);
    s.ipSync(this.ns, ['addr', 'flush', 'dev', name]);
    s.ipSync(this.ns, ['neigh', 'flush', 'dev', name]);
    // Routes through the old subnet go before the new address brings its own connected route.
    this.removeRoutesThrough(name);
    s.ipSync(this.ns, ['addr', 'add', cidr, 'dev', name]);
    this.readdress(iface, address, prefix);
    this.network.forgetNeighbour(target, u32ToIp(address), this);
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
      this.network.session.ipSync(this.ns, ['neigh', 'replace', 'proxy', address, 'dev', ifaceName]);
      this.network.session.ipSync(this.ns, ['route', 'replace', `${address}/32`, 'dev', 'lo']);
    } else {
      this.quietly(['neigh', 'del', 'proxy', address, 'dev', ifaceName]);
      this.quietly(['route', 'del', `${address}/32`, 'dev', 'lo']);
    }
    this.network.forgetNeighbour(iface.port.link, address, this);
  }

  /** Applications can bind it: an address on lo. */
  protected override localAddressAdded(address: string): void {
    this.network.session.ipSync(this.ns, ['addr', 'replace', `${address}/32`, 'dev', 'lo']);
  }

  protected override localAddressRemoved(address: string): void {
    this.network.session.ipSync(this.ns, ['addr', 'del', `${address}/32`, 'dev', 'lo']);
  }

  /** The kernel's main table mirrors the JS routes: it routes what the raw socket sends. */
  protected override routeAdded(prefix: Prefix, via: string | undefined, iface: string): void {
    this.network.session.ipSync(this.ns, ['route', 'replace', prefixString(prefix), ...(via ? ['via', via] : []), 'dev', iface]);
  }

  protected override routeRemoved(prefix: Prefix): void {
    this.quietly(['route', 'del', prefixString(prefix)]);
  }

  /** An `ip` removal whose object may already be gone with an address or a flushed table. */
  private quietly(args: string[]): void {
    try {
      this.network.session.ipSync(this.ns, args);
    } catch (err) {
      if (!(err instanceof CommandError && /No such|not found|Cannot find/i.test(err.stderr))) throw err;
    }
  }

  protected override defer(run: () => void): void {
    setImmediate(() => this.guard(run));
  }

  protected override linkName(iface: LinuxInterface): string {
    return iface.port.link.name;
  }

  /** The raw socket: the kernel routes the packet by its (mirrored) table and resolves the next hop with ARP. */
  protected override transmit(packet: Uint8Array): boolean {
    this.local.inject([{ packet, via: 'raw' }]);
    return true;
  }

  /** The applications' traffic also goes to the kernel's sockets. */
  protected override delivered(packet: Uint8Array): void {
    if (isApplicationTraffic(packet)) this.local.inject([{ packet, via: 'tun' }]);
  }

  private guard(run: () => void): void {
    if (this.network.isClosed) return;
    try {
      run();
    } catch (error) {
      this.network.onError(error);
    }
  }
}

/**
 * Destinations 224.0.0.0 and up (multicast, reserved, broadcast): the kernels' own IGMP reports when
 * interfaces come up. No lab host sends any and MemoryNetwork has none, so they stay out of the hosts.
 */
function isKernelMulticast(packet: Uint8Array): boolean {
  return packet.length >= 20 && packet[16] >= 224;
}

/** What the kernel's sockets in a lab host take: ICMP echo, TCP, and UDP to or from the iperf3 port. */
function isApplicationTraffic(packet: Uint8Array): boolean {
  const ihl = (packet[0] & 0x0f) * 4;
  const proto = packet[9];
  if (proto === IpProto.TCP) return true;
  if (packet.length < ihl + 4) return false;
  if (proto === IpProto.ICMP) return packet[ihl] === ICMP_ECHO_REQUEST || packet[ihl] === ICMP_ECHO_REPLY;
  if (proto === IpProto.UDP) {
    const srcPort = (packet[ihl] << 8) | packet[ihl + 1];
    const dstPort = (packet[ihl + 2] << 8) | packet[ihl + 3];
    return srcPort === APP_PORT || dstPort === APP_PORT;
  }
  return false;
}
