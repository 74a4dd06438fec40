/*
 * PlainHost: a LinuxNetwork host without a role (a correspondent, a router, an application server) on its
 * kernel's own stack — no tc redirect, no TUN, no I/O loop. The kernel forwards (ip_forward = the host's
 * `forwarding`), routes by its main table (which mirrors addRoute, every route with the applications' MTU),
 * answers ARP and ping, and its applications (iperf3, ping, the lab's UDP apps) use real sockets.
 *
 * The Host contract on it
 *   send(d)        UDP only: the datagram's payload leaves from a real UDP socket bound to its source address
 *                  and port, to its destination and port (the kernel writes the IPv4 header). Other protocols
 *                  are refused: a plain host makes its packets with sockets, not by hand.
 *   onDeliver      the UDP datagrams the host's sockets receive: those of the ports listenUdp() opened and of the
 *                  ports send() bound (a client's replies), rebuilt from the socket's addresses (the kernel has
 *                  checked, reassembled and consumed the IPv4 header). Anything else stays with the kernel: a
 *                  datagram to a port no socket holds gets the kernel's ICMP port unreachable, as on any host.
 *   listenUdp(p)   opens UDP port p on every address (the lab's echo server, proxy).
 *   addHook, inject  refused: no JS sees the host's packets.
 *
 * The sockets live in one small Node process per host (`node -e APP_AGENT` in the namespace, as the lab's
 * application uid; ports below 1024 are open to it there), started on first use and stopped with the lab. It
 * speaks JSON lines: commands listen/send on stdin, events ready/bound/recv/error on stdout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { ipToU32, u32ToIp } from '../../wire/addr.js';
import { IpProto, parseIpv4 } from '../../wire/ipv4.js';
import { buildUdpDatagram, parseUdpDatagram } from '../../wire/udp.js';
import type { HookStage, InjectOptions, PacketHook, SendOptions, SendResult } from '../types.js';
import { NamespaceHost, type NamespaceWorld } from './namespace-host.js';

export interface PlainHostSettings {
  /** The veth MTU. */
  linkMtu: number;
  /** The MTU of every route of the host: what its applications send in one datagram. */
  appMtu: number;
  /** The command line that runs argv as the lab's application uid. */
  asAppUser(argv: readonly string[]): string[];
}

/** The application agent: UDP sockets for the host, driven over stdin/stdout (CommonJS for `node -e`). */
const APP_AGENT =
  String.raw`
const dgram = require('node:dgram');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const socks = new Map();
function open(port, addr) {
  let s = socks.get(port);
  if (s) return s;
  const sock = dgram.createSocket('udp4');
  s = { sock, addr, ready: new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, addr, () => { sock.off('error', reject); resolve(); });
  }) };
  s.ready.then(() => sock.on('error', (e) => ` +
  String.raw`out({ op: 'error', message: 'socket ' + addr + ':' + port + ': ' + e.message })),
    (e) => out({ op: 'error', message: 'bind ' + addr + ':' + port + ': ' + e.message }));
  sock.on('message', (m, r) => ` +
  String.raw`out({ op: 'recv', src: r.address, sport: r.port, dst: addr, dport: port, data: m.toString('base64') }));
  socks.set(port, s);
  return s;
}
require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const c = JSON.parse(line);
  if (c.op === 'listen') {
    open(c.port, '0.0.0.0').ready.then(() => out({ op: 'bound', port: c.port }), ` +
  String.raw`() => out({ op: 'bound', port: c.port, failed: true }));
  } else if (c.op === 'send') {
    const s = open(c.sport, c.src);
    s.ready.then(() => s.sock.send(Buffer.from(c.data, 'base64'), c.dport, c.dst, ` +
  String.raw`(e) => e && out({ op: 'error', message: 'send to ' + c.dst + ': ' + e.message })), () => undefined);
  }
}).on('close', () => process.exit(0));
out({ op: 'ready' });
`;

interface AgentEvent {
  op: 'ready' | 'bound' | 'recv' | 'error';
  port?: number;
  failed?: boolean;
  src?: string;
  sport?: number;
  dst?: string;
  dport?: number;
  data?: string;
  message?: string;
}

export class PlainHost extends NamespaceHost {
  private agent: ChildProcess | undefined;
  private stopping = false;
  private pendingBinds = 0;
  private readonly bindWaiters: (() => void)[] = [];
  private readonly listening = new Set<number>();

  constructor(
    world: NamespaceWorld,
    name: string,
    ns: string,
    forwarding: boolean,
    private readonly settings: PlainHostSettings,
  ) {
    super(world, name, ns, forwarding);
    world.session.execSync(ns, 'sysctl', [
      '-q',
      '-w',
      `net.ipv4.ip_forward=${forwarding ? 1 : 0}`,
      'net.ipv4.conf.all.rp_filter=0',
      'net.ipv4.conf.default.rp_filter=0',
      'net.ipv4.ping_group_range=0 2147483647',
      'net.ipv4.ip_unprivileged_port_start=0',
    ]);
  }

  addInterface(name: string, link: string, cidr: string): void {
    const { port, address, prefix } = this.attachInterface(name, link, cidr, this.settings.linkMtu);
    this.registerInterface({ name, port, address, prefix });
    this.connectedRouteAdded(name, cidr);
  }

  protected override routeWords(): string[] {
    return ['mtu', String(this.settings.appMtu)];
  }

  override addHook(stage: HookStage, _hook: PacketHook): () => void {
    throw new Error(
      `host '${this.name}' is a plain host on its kernel's own stack: no ${stage} hooks (give a role host instead)`,
    );
  }

  override inject(_datagram: Uint8Array, _options?: InjectOptions): void {
    throw new Error(
      `host '${this.name}' is a plain host on its kernel's own stack: nothing can be injected into its input path`,
    );
  }

  /** A UDP datagram leaves from a real socket bound to its source address and port. */
  override send(datagram: Uint8Array, _options?: SendOptions): SendResult {
    const ip = parseIpv4(datagram, 0, datagram.length);
    if (!ip.ok) return { ok: false, reason: 'bad_ipv4' };
    if (ip.header.protocol !== IpProto.UDP) {
      throw new Error(
        `host '${this.name}' is a plain host: send() carries UDP through its sockets, not IP protocol ` +
          `${ip.header.protocol}`,
      );
    }
    const udp = parseUdpDatagram(datagram);
    if (!udp.ok) return { ok: false, reason: 'bad_ipv4' };
    const u = udp.udp;
    this.command({
      op: 'send',
      src: u32ToIp(u.src),
      sport: u.srcPort,
      dst: u32ToIp(u.dst),
      dport: u.dstPort,
      data: Buffer.from(u.payload).toString('base64'),
    });
    return { ok: true };
  }

  listenUdp(port: number): void {
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new RangeError(`listenUdp: port must be 1..65535, got ${port}`);
    if (this.listening.has(port)) return;
    this.listening.add(port);
    this.pendingBinds++;
    this.command({ op: 'listen', port });
  }

  /** Resolves once every port listenUdp() asked for is open. */
  appsReady(): Promise<void> {
    if (this.pendingBinds === 0) return Promise.resolve();
    return new Promise((resolve) => this.bindWaiters.push(resolve));
  }

  /** Never called: send() hands everything to the sockets. */
  protected override transmit(): boolean {
    return false;
  }

  private command(c: Record<string, unknown>): void {
    if (this.world.isClosed) return;
    this.startAgent().stdin!.write(`${JSON.stringify(c)}\n`);
  }

  private startAgent(): ChildProcess {
    if (this.agent) return this.agent;
    const argv = ['netns', 'exec', this.ns, ...this.settings.asAppUser([process.execPath, '-e', APP_AGENT])];
    const child = spawn('ip', argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.agent = child;
    let stderr = '';
    let buffered = '';
    child.stdin.on('error', () => undefined);
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line) this.guard(() => this.onEvent(JSON.parse(line) as AgentEvent));
      }
    });
    child.once('exit', (code, signal) => {
      this.releaseBinds();
      if (!this.stopping && !this.world.isClosed)
        this.world.onError(
          new Error(`host '${this.name}': its application agent exited (${code ?? signal}): ${stderr.trim()}`),
        );
    });
    const stop = () => {
      this.stopping = true;
      child.kill('SIGTERM');
    };
    this.world.session.onCleanup(
      `application agent of ${this.name}`,
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        stop();
        await exited;
      },
      stop,
    );
    return child;
  }

  private onEvent(e: AgentEvent): void {
    if (e.op === 'bound') {
      if (e.failed) this.world.onError(new Error(`host '${this.name}': could not open UDP port ${e.port}`));
      if (--this.pendingBinds === 0) this.releaseBinds();
    } else if (e.op === 'error') {
      this.world.onError(new Error(`host '${this.name}': ${e.message}`));
    } else if (e.op === 'recv') {
      const dst = e.dst === '0.0.0.0' ? this.interfaces()[0]?.address : e.dst;
      if (!dst) return;
      const iface = this.interfaces().find((i) => i.address === dst);
      const packet = buildUdpDatagram(
        { src: ipToU32(e.src!), dst: ipToU32(dst), srcPort: e.sport!, dstPort: e.dport! },
        Buffer.from(e.data!, 'base64'),
      );
      this.deliver(packet, { host: this.name, iface: iface?.name, link: iface?.link, time: this.world.clock.now() });
    }
  }

  private releaseBinds(): void {
    this.pendingBinds = 0;
    for (const resolve of this.bindWaiters.splice(0)) resolve();
  }
}
