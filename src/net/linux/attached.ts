/*
 * AttachedHost: the Host contract (../types.ts) on the CURRENT network namespace's existing interfaces,
 * for the role daemons (`mipsec sgw|smn|ha`). The same mechanism as LinuxNetwork's hosts (./network.ts),
 * without creating anything but the redirection. The packet logic — route table, hooks, send and input
 * paths, local delivery, forwarding, drop counters — is HostCore's (../host-core.ts); this file is the world:
 *
 *   interfaces      the ones the node config names; each must exist and carry its configured address
 *                   (`ip -j addr`). Nothing is created or renamed; moveInterface replaces the address.
 *   from a link     every IPv4 packet arriving on a named interface is redirected at tc ingress (u32 +
 *                   mirred, filter preference FILTER_PREF) into a TUN `t-<name>` read by an I/O loop (the same
 *                   InterfaceLoops as a lab host's, ./interface-loops.ts) on the role's engine, or on an empty engine
 *                   that punts it to JS with its arrival interface → input hooks. The
 *                   kernel's IP stack never sees it: local services on those interfaces stop answering.
 *                   ARP stays with the kernel. Kernel multicast (224.0.0.0 and up) is left out. Each loop takes
 *                   the node config's dataPath (transport, workers, poll window) and is bound to its interface:
 *                   SKIP/AH/ESP/IP-in-IP reaching the kernel on an interface the config does not name is refused
 *                   (rxForeignInterface). With transport udp, datagrams to the UDP port pass the redirect
 *                   to the interface's own address (filter preference FILTER_PREF - 1) so the kernel hands them to
 *                   the loop's UDP socket; nothing else reaches the kernel's forwarding.
 *   routes          the kernel's main-table routes through the named interfaces are read at attach; routes
 *                   the roles add are mirrored with `ip route replace` and removed again on close.
 *   send / forward  output hooks, the route table, then the raw IP_HDRINCL socket (or the UDP transport) of the
 *                   route's interface's loop: the kernel routes the datagram by its table and resolves the next
 *                   hop with ARP. What is larger than the interface's MTU (or the loop's MAX_PACKET) leaves in
 *                   fragments; a sealed packet with DF is refused by the link and answered with ICMP 3/4 when the
 *                   datagram it carries has DF (the loop's path, docs/engine.md §9), else dropped (too_big).
 *   local delivery  onDeliver handlers; an ICMP echo request to the host's own addresses is answered here
 *                   (the kernel never sees it). The host's own applications are not routed through the role.
 *
 * close() removes everything it added — the tc filters (and the ingress qdiscs it created), the TUNs,
 * routes, proxy entries and local addresses — and runs synchronously, so it also runs from a process
 * 'exit' handler after a crash. A filter at FILTER_PREF left by a killed daemon is replaced at attach
 * (and its ingress qdisc, when nothing else uses it, is removed on close).
 *
 * fail closed     attach also adds a policy rule (RULE_PREF, after the local table, before main) that
 *                 blackholes what the kernel would forward from each named interface. While the redirect is up
 *                 it sees nothing; with failClosed (the SGW daemon's default) close() leaves it, so a stopped
 *                 gateway on a kernel with ip_forward=1 does not forward the protected sites' traffic in clear.
 *                 The next attach finds it in place (and keeps it while it swaps a stale filter);
 *                 removeFailClosed() (`mipsec sgw --uninstall`) removes it. iproute2 only: tc's gact drop
 *                 action is a module many kernels do not load.
 */
import fs from 'node:fs';
import { DEFAULT_DATA_PATH, type DataPath } from '../../config/node.js';
import { systemClock } from '../system-clock.js';
import { MAX_PACKET } from '../../engine/io.js';
import type { NativeEngine } from '../../engine/native.js';
import { ipToU32, parsePrefix, prefixMask, readU32, u32ToIp, type Prefix } from '../../wire/addr.js';
import { echoReply, isFragmentationNeeded } from '../echo.js';
import { HostCore, parseCidr, prefixString, type CoreInterface } from '../host-core.js';
import type { HostDataPath } from '../types.js';
import { APP_MTU, ingressRedirectArgs, InterfaceLoops } from './interface-loops.js';
import { CommandError, runBatchSync, runCommandSync } from '../netns.js';

/** The tc filter preference mipsec's redirect uses (and removes) on each interface's ingress. */
export const FILTER_PREF = 49_001;
/** The priority of the fail-closed blackhole rule: after `lookup local` (0), before `lookup main` (32766). */
export const RULE_PREF = 32_001;
/** The priority of the rules that let proxy ARP answer for a proxied address in front of the blackhole (setProxy). */
export const PROXY_RULE_PREF = 32_000;
const UDP_TRANSPORT_BYTES = 28;

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
  /** How the I/O loops move packets (node config dataPath; default raw, one worker, no polling). */
  dataPath?: DataPath;
  /** The I/O workers' nice value (IoLoopOptions.workerNice; default: inherited from the thread starting a loop). */
  workerNice?: number;
  /** close() leaves the blackhole rules for forwarding from the interfaces in place (default false). */
  failClosed?: boolean;
  /** Errors a role throws while handling a packet (default: rethrown). */
  onError?: (error: unknown) => void;
  /**
   * The engine the node's role runs: every interface's loop runs it too, with the interface's policy table
   * (host.dataPath), and hands decrypted datagrams to the kernel's routes. Unset: each loop has an empty engine and
   * punts every packet to the role. The host never closes it.
   */
  engine?: NativeEngine;
  /**
   * With `engine`: the host's own applications' port (an SMN's home address). A TUN named `port` carrying
   * `address`/32, read by an I/O loop on the engine with table dataPath.tableOf(port) (OUTBOUND: what the role
   * compiled seals them without JS; no policy → the host's send() path, output hooks first); what the host
   * delivers to `address` is written into it (the kernel hands it to the sockets). Policy routing sends every
   * locally generated datagram into it with `address` as source, except the I/O loops' own sends (raw
   * IP_HDRINCL, the UDP transport) and what leaves from an interface's own address (see APP_RULE_PREF).
   */
  applications?: ApplicationPort;
}

export interface ApplicationPort {
  /** The TUN's name (and its name for dataPath.tableOf). */
  port: string;
  /** The applications' address (an SMN's home address). */
  address: string;
  /** Default APP_MTU. */
  mtu?: number;
  /**
   * The home agent whose RFC 2003 tunnel carries `address`'s traffic to this host: the interface loops peel it and
   * hand the inner datagram to the kernel (IoLoopOptions.kernelTunnel) once an End-End SA has opened it.
   */
  homeAgent?: string;
}

/**
 * Policy rules of the applications' port, in this order (before `lookup main`, 32766; after `lookup local`, 0):
 *   APP_RULE_PREF      ipproto 255 lookup main      the loops' raw IP_HDRINCL sends (sealed packets, signalling)
 *   APP_RULE_PREF + 1  ipproto udp dport P lookup main   the UDP transport (dataPath.transport udp)
 *   APP_RULE_PREF + 2  from <interface address> lookup main   what is bound to the care-of address itself
 *   APP_RULE_PREF + 3  iif lo lookup APP_ROUTE_TABLE   every other locally generated datagram: into the TUN
 * A daemon killed before its stop leaves them: the next attach deletes every rule at these preferences first.
 */
export const APP_RULE_PREF = 31_001;
/** The routing table with the applications' default route (dev <port> src <address>). */
export const APP_ROUTE_TABLE = 31_001;
/** The metric of table APP_ROUTE_TABLE's `unreachable default` behind the TUN's route. */
const APP_FALLBACK_METRIC = 4_000_000_000;

interface AddrInfo {
  ifname: string;
  operstate?: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
  mtu?: number;
}

interface KernelRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
}

function ip(args: readonly string[]): string {
  return runCommandSync('ip', args);
}

interface KernelRule {
  priority: number;
  iif?: string;
  dst?: string;
  dstlen?: number;
  action?: string;
}

/** Every policy rule of the namespace (one `ip` for all that attach looks at). */
function kernelRules(): KernelRule[] {
  return JSON.parse(ip(['-j', 'rule', 'show']) || '[]') as KernelRule[];
}

/** Whether `rules` hold the fail-closed blackhole rule (RULE_PREF) for `dev`. */
function blackholed(rules: readonly KernelRule[], dev: string): boolean {
  return rules.some((r) => r.priority === RULE_PREF && r.iif === dev && r.action === 'blackhole');
}

/**
 * `mipsec sgw --uninstall`: removes what a fail-closed stop (or a killed daemon) left for `devs`: the blackhole
 * rules, and a stale redirect filter (its ingress qdisc too when no other filter uses it). Returns what it removed.
 */
export function removeFailClosed(devs: readonly string[]): string[] {
  const removed: string[] = [];
  const rules = kernelRules();
  for (const dev of devs) {
    if (blackholed(rules, dev)) {
      ip(['rule', 'del', 'pref', String(RULE_PREF), 'iif', dev, 'blackhole']);
      removed.push(`ip rule ${RULE_PREF} iif ${dev} blackhole`);
    }
    const filters = () => runCommandSync('tc', ['filter', 'show', 'dev', dev, 'ingress']);
    if (!filters().includes(`pref ${FILTER_PREF} `)) continue;
    runCommandSync('tc', ['filter', 'del', 'dev', dev, 'ingress', 'pref', String(FILTER_PREF)]);
    removed.push(`tc filter pref ${FILTER_PREF} on ${dev}`);
    if (filters().trim() === '') {
      quietly('tc', ['qdisc', 'del', 'dev', dev, 'ingress']);
      removed.push(`ingress qdisc on ${dev}`);
    }
  }
  return removed;
}

/** Deletes every policy rule at the preferences `prefs` (none left is fine). */
function removeRules(...prefs: number[]): void {
  quietBatch(
    kernelRules()
      .filter((r) => prefs.includes(r.priority))
      .map((r) => ['rule', 'del', 'pref', String(r.priority)]),
  );
}

/**
 * `ip` removals in one process, each of whose objects may already be gone (quietly, batched). `ip` exits at a failed
 * `neigh` command even under -force: one goes last.
 */
function quietBatch(commands: readonly (readonly string[])[]): void {
  tolerateFailure(() => runBatchSync('ip', commands, { continueOnError: true }));
}

/** A removal whose object may already be gone (with its device, or never made). */
function quietly(cmd: string, args: readonly string[]): void {
  tolerateFailure(() => runCommandSync(cmd, args));
}

/** Runs a command whose failure is expected and harmless; anything but the command failing still throws. */
function tolerateFailure(run: () => unknown): void {
  try {
    run();
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
  }
}

/** An interface is its own link here: the namespace's real device. */
export class AttachedHost extends HostCore<CoreInterface> {
  private readonly proxied = new Set<string>();
  private readonly proxySysctls = new Set<string>();
  /** The interfaces' loops and the applications', on the role's engine (AttachOptions.engine) or an empty one. */
  private readonly loops: InterfaceLoops;
  readonly dataPath?: HostDataPath;
  private readonly loopSettings: DataPath;
  /** Undo steps for what was added to the kernel, run in reverse order by close(). */
  private readonly undo: { what: string; run: () => void }[] = [];
  private readonly addedRoutes = new Set<string>();
  private readonly onError: (error: unknown) => void;
  private readonly failClosed: boolean;
  private readonly exitHook = () => this.close();
  private closed = false;
  /** What the interface loops peel for the applications (ApplicationPort.homeAgent). */
  private readonly kernelTunnel?: { from: string; to: string };
  /** The applications' port (AttachOptions.applications) once its loop runs. */
  private apps?: { port: string; address: number };

  /** The address the host's applications use (its application port's), if it has one. */
  get applicationAddress(): string | undefined {
    return this.apps && u32ToIp(this.apps.address);
  }

  /** Attaches to the named interfaces; on any failure, whatever it had added is removed again. */
  static attach(options: AttachOptions): AttachedHost {
    const host = new AttachedHost(options);
    try {
      host.setUp(options.interfaces);
      if (options.applications) host.setUpApplications(options.applications);
    } catch (err) {
      host.close();
      throw err;
    }
    return host;
  }

  private constructor(options: AttachOptions) {
    super(options.name, options.forwarding, systemClock);
    this.onError =
      options.onError ??
      ((error) => {
        throw error;
      });
    this.loopSettings = options.dataPath ?? DEFAULT_DATA_PATH;
    this.failClosed = options.failClosed ?? false;
    const { udpPort, workers, pollMicros } = this.loopSettings;
    this.loops = new InterfaceLoops({
      engine: options.engine,
      transport: { udpPort, workers, pollMicros, workerNice: options.workerNice },
      // The role's plain FORWARDs go back to the kernel by the TUN they came from (forwarding is on there, below).
      plainByKernel: options.engine !== undefined,
      isLocalAddress: (address) => this.isLocal(u32ToIp(address)),
      onError: (error) => this.onError(error),
    });
    const apps = options.applications;
    this.kernelTunnel = options.engine && apps?.homeAgent ? { from: apps.homeAgent, to: apps.address } : undefined;
    if (this.loops.shared) {
      const loops = this.loops;
      this.dataPath = {
        tableOf: (iface) => {
          if (!loops.loop(iface)) throw new Error(`host '${this.name}': no interface '${iface}' with an I/O loop`);
          return loops.tableOf(iface);
        },
        onEnginePunt: (handler) => loops.onEnginePunt(handler),
        inject: (iface, packets) => loops.inject(iface, packets),
        applicationAddress: () => this.applicationAddress,
      };
    }
    process.on('exit', this.exitHook);
  }

  /** The kernel never sees what the role delivers locally: the gateway's own addresses answer ping here. */
  protected override delivered(packet: Uint8Array): void {
    // For the applications: into their TUN, where the kernel hands it to the sockets (and answers ping itself).
    if (this.apps && packet.length >= 20 && readU32(packet, 16) === this.apps.address) {
      this.loops.inject(this.apps.port, [{ packet, via: 'tun' }]);
      return;
    }
    // A router on the way refused one of our sealed packets as too big: the kernel keeps the path MTU (the loops read
    // it when they answer the next such datagram's sender), so it gets the message, from the TUN toward its sender.
    if (isFragmentationNeeded(packet)) {
      const toward = this.lookupRoute(u32ToIp(readU32(packet, 12)));
      if (toward) this.loops.inject(toward.iface, [{ packet, via: 'tun' }]);
      return;
    }
    const reply = echoReply(packet);
    if (reply) this.send(reply);
  }

  private setUp(wanted: readonly AttachInterface[]): void {
    const present = JSON.parse(ip(['-j', 'addr', 'show']) || '[]') as AddrInfo[];
    for (const itf of wanted) {
      const found = present.find((p) => p.ifname === itf.name);
      if (!found)
        throw new InterfaceMismatchError(
          `interfaces: no interface named '${itf.name}' in this network namespace ` +
            `(it has: ${present.map((p) => p.ifname).join(', ')}); fix the name in the config or create the interface`,
        );
      const has = (found.addr_info ?? []).filter((a) => a.family === 'inet');
      if (!has.some((a) => a.local === itf.address && a.prefixlen === itf.prefixLength)) {
        throw new InterfaceMismatchError(
          `interfaces: '${itf.name}' does not carry ${itf.address}/${itf.prefixLength} (it has: ` +
            `${has.map((a) => `${a.local}/${a.prefixlen}`).join(', ') || 'no IPv4 address'}); ` +
            `add it with: ip addr add ${itf.address}/${itf.prefixLength} dev ${itf.name}`,
        );
      }
    }
    const ifaces = wanted.map((itf): CoreInterface => {
      const address = ipToU32(itf.address);
      // The raw socket sends nothing larger than the interface's MTU, the I/O loop nothing larger than MAX_PACKET.
      // The UDP transport puts 28 bytes of IPv4 + UDP in front of what the role sends (docs/engine.md §9.1).
      const carried = this.loopSettings.udpPort === undefined ? 0 : UDP_TRANSPORT_BYTES;
      const mtu = Math.min((present.find((p) => p.ifname === itf.name)?.mtu ?? MAX_PACKET) - carried, MAX_PACKET);
      const prefix = { network: (address & prefixMask(itf.prefixLength)) >>> 0, length: itf.prefixLength };
      return { name: itf.name, address, prefix, mtu };
    });
    const rules = kernelRules();
    // Proxy ARP rules a killed daemon left for these interfaces.
    quietBatch(
      rules
        .filter((r) => r.priority === PROXY_RULE_PREF && r.iif && r.dst && ifaces.some((i) => i.name === r.iif))
        .map((r) => [
          'rule',
          'del',
          'pref',
          String(PROXY_RULE_PREF),
          'iif',
          r.iif!,
          'to',
          `${r.dst}/${r.dstlen ?? 32}`,
        ]),
    );
    // Closed before anything is redirected: no moment in which the kernel forwards what arrives.
    this.closeForwarding(
      ifaces.map((i) => i.name),
      rules,
    );
    this.redirect(ifaces);
    for (const iface of ifaces) this.registerInterface(iface);
    // The kernel's routes through our interfaces are the host's routes too.
    const kernel = JSON.parse(ip(['-j', 'route', 'show', 'table', 'main']) || '[]') as KernelRoute[];
    for (const r of kernel) {
      // Connected routes ('proto kernel') are already the interfaces' own.
      if (!r.dev || !ifaces.some((i) => i.name === r.dev) || r.protocol === 'kernel') continue;
      const prefix = parsePrefix(r.dst === 'default' ? '0.0.0.0/0' : r.dst.includes('/') ? r.dst : `${r.dst}/32`);
      this.adoptRoute(prefix, r.gateway === undefined ? undefined : ipToU32(r.gateway), r.dev);
    }
    for (const itf of wanted) {
      if (itf.gateway && !this.lookupRoute('0.0.0.0')?.via)
        this.addRoute('0.0.0.0/0', { via: itf.gateway, iface: itf.name });
    }
  }

  /**
   * The applications' TUN and its loop on the role's engine, the address on it, the routing table and rules that
   * send the host's own traffic into it (APP_RULE_PREF); everything is undone on close (rules and table also at the
   * next attach after a crash; the TUN goes with the process).
   */
  private setUpApplications(apps: ApplicationPort): void {
    if (!this.dataPath)
      throw new Error(`host '${this.name}': an application port needs the role's native engine (AttachOptions.engine)`);
    const address = ipToU32(apps.address);
    const removeAll = () => {
      removeRules(APP_RULE_PREF, APP_RULE_PREF + 1, APP_RULE_PREF + 2, APP_RULE_PREF + 3);
      quietly('ip', ['route', 'flush', 'table', String(APP_ROUTE_TABLE)]);
    };
    // What a killed daemon left.
    removeAll();
    const { udpPort } = this.loopSettings;
    // Its raw receivers and UDP socket take nothing from the links (the interfaces' loops do): bound to lo (a loop of
    // a shared engine must be bound, and the TUN does not exist before the loop opens it).
    this.loops.start(
      {
        iface: apps.port,
        tun: apps.port,
        mtu: apps.mtu ?? APP_MTU,
        addresses: [`${apps.address}/32`],
        bindInterface: 'lo',
        deliver: 'tun',
      },
      (packet) => this.guard(() => this.send(packet)),
    );
    this.apps = { port: apps.port, address };
    this.undo.push({ what: `application rules and table ${APP_ROUTE_TABLE}`, run: removeAll });
    ip(['link', 'set', 'dev', apps.port, 'up']);
    // What the role lets leave plain (at home, everything) goes back into the TUN for the kernel to forward: from the
    // host's own addresses (accept_local), forwarded from this device only.
    for (const [key, value] of [
      ['rp_filter', '0'],
      ['forwarding', '1'],
      ['accept_local', '1'],
    ])
      fs.writeFileSync(`/proc/sys/net/ipv4/conf/${apps.port}/${key}`, value);
    const table = ['table', String(APP_ROUTE_TABLE)];
    runBatchSync('ip', [
      ['route', 'replace', 'default', 'dev', apps.port, 'src', apps.address, ...table],
      // Fail closed: when the TUN goes without a stop (SIGKILL), its route goes with it and this one answers instead
      // (the applications get "unreachable" rather than leaving in clear by the main table) until the next start.
      ['route', 'replace', 'unreachable', 'default', 'metric', String(APP_FALLBACK_METRIC), ...table],
      ['rule', 'add', 'pref', String(APP_RULE_PREF), 'ipproto', '255', 'lookup', 'main'],
      ...(udpPort === undefined
        ? []
        : [
            [
              'rule',
              'add',
              'pref',
              String(APP_RULE_PREF + 1),
              'ipproto',
              'udp',
              'dport',
              String(udpPort),
              'lookup',
              'main',
            ],
          ]),
    ]);
    this.sourceRules();
    ip(['rule', 'add', 'pref', String(APP_RULE_PREF + 3), 'iif', 'lo', 'lookup', String(APP_ROUTE_TABLE)]);
  }

  /** `from <address> lookup main` for each interface's current address (what is bound to it leaves as it is). */
  private sourceRules(): void {
    if (!this.apps) return;
    removeRules(APP_RULE_PREF + 2);
    runBatchSync(
      'ip',
      this.interfaces().map((info) => [
        'rule',
        'add',
        'pref',
        String(APP_RULE_PREF + 2),
        'from',
        `${info.address}/32`,
        'lookup',
        'main',
      ]),
    );
  }

  /**
   * What the kernel would forward from each of `devs` is blackholed (local delivery is looked up first, so it still
   * works); the rules are removed on close unless the host fails closed (then they outlive the daemon).
   */
  private closeForwarding(devs: readonly string[], rules: readonly KernelRule[]): void {
    // One already there (a fail-closed stop, or a daemon killed before its stop) is kept; a host that does not fail
    // closed still removes it on close, so a crash does not leave it for good.
    const rule = (dev: string) => ['pref', String(RULE_PREF), 'iif', dev, 'blackhole'];
    if (!this.failClosed)
      for (const dev of devs)
        this.undo.push({ what: `ip rule for ${dev}`, run: () => quietly('ip', ['rule', 'del', ...rule(dev)]) });
    const open = devs.filter((dev) => !blackholed(rules, dev));
    runBatchSync(
      'ip',
      open.map((dev) => ['rule', 'add', ...rule(dev)]),
    );
  }

  /**
   * tc ingress of each interface → its own TUN, read by an I/O loop (InterfaceLoops): on the role's engine with the
   * interface's policy table (the role's tables decide; punts with engine context come to the role), else on an
   * empty engine that punts every packet to receive(). The links and filters go in with one `ip` and one `tc`.
   */
  private redirect(ifaces: readonly CoreInterface[]): void {
    const tunOf = (iface: CoreInterface) => `t-${iface.name}`.slice(0, 15);
    for (const iface of ifaces)
      this.loops.start(
        { iface: iface.name, tun: tunOf(iface), mtu: MAX_PACKET, kernelTunnel: this.kernelTunnel },
        (p) => this.guard(() => this.receive(p, iface)),
      );
    runBatchSync(
      'ip',
      ifaces.map((iface) => ['link', 'set', 'dev', tunOf(iface), 'up']),
    );
    // What the role's SAs opened goes into the TUN for the kernel to forward inside: forwarding on that device only
    // (the interfaces' own forwarding stays blackholed, RULE_PREF), no reverse-path check (the sources are remote).
    if (this.loops.shared)
      for (const iface of ifaces)
        for (const [key, value] of [
          ['forwarding', '1'],
          ['rp_filter', '0'],
        ])
          fs.writeFileSync(`/proc/sys/net/ipv4/conf/${tunOf(iface)}/${key}`, value);
    const qdiscs = JSON.parse(runCommandSync('tc', ['-j', 'qdisc', 'show']) || '[]') as {
      kind: string;
      dev?: string;
    }[];
    const add: string[][] = [];
    for (const iface of ifaces) {
      const dev = iface.name;
      const filters = () => runCommandSync('tc', ['filter', 'show', 'dev', dev, 'ingress']);
      let ownQdisc = !qdiscs.some((q) => q.kind === 'ingress' && q.dev === dev);
      if (ownQdisc) {
        add.push(['qdisc', 'add', 'dev', dev, 'ingress']);
      } else if (filters().includes(`pref ${FILTER_PREF} `)) {
        // A filter left by a daemon that was killed (ours by its preference); with nothing else there, its qdisc was
        // ours too.
        runCommandSync('tc', ['filter', 'del', 'dev', dev, 'ingress', 'pref', String(FILTER_PREF)]);
        ownQdisc = filters().trim() === '';
      }
      if (ownQdisc)
        this.undo.push({
          what: `ingress qdisc on ${dev}`,
          run: () => quietly('tc', ['qdisc', 'del', 'dev', dev, 'ingress']),
        });
    }
    for (const iface of ifaces) {
      add.push(ingressRedirectArgs(iface.name, tunOf(iface), FILTER_PREF));
      this.undo.push({
        what: `tc filter on ${iface.name}`,
        run: () => quietly('tc', ['filter', 'del', 'dev', iface.name, 'ingress', 'pref', String(FILTER_PREF)]),
      });
    }
    runBatchSync('tc', add);
    if (this.loopSettings.udpPort !== undefined)
      for (const iface of ifaces)
        this.passUdpTransport(
          iface,
          ifaces.map((i) => i.address),
          this.loopSettings.udpPort,
        );
  }

  /**
   * UDP transport datagrams to any of the node's addresses go to the kernel (so to the UDP socket of the loop of the
   * interface they arrive on), not the TUN: a nested SGW sends its Next-hop layers to our outside address, and they
   * arrive on the inside.
   */
  private passUdpTransport(iface: CoreInterface, addresses: readonly number[], port: number): void {
    const ifname = iface.name;
    const pref = String(FILTER_PREF - 1);
    quietly('tc', ['filter', 'del', 'dev', ifname, 'ingress', 'pref', pref]);
    for (const address of addresses) this.passUdpTo(ifname, pref, address, port);
    const remove = () => quietly('tc', ['filter', 'del', 'dev', ifname, 'ingress', 'pref', pref]);
    this.undo.push({ what: `tc UDP transport filters on ${ifname}`, run: remove });
  }

  private passUdpTo(ifname: string, pref: string, address: number, port: number): void {
    runCommandSync('tc', [
      'filter',
      'add',
      'dev',
      ifname,
      'ingress',
      'pref',
      pref,
      'protocol',
      'ip',
      'u32',
      'match',
      'ip',
      'dst',
      `${u32ToIp(address)}/32`,
      'match',
      'ip',
      'protocol',
      '17',
      '0xff',
      'match',
      'ip',
      'dport',
      String(port),
      '0xffff',
      'flowid',
      ':1',
    ]);
  }

  /**
   * Follows the kernel's address of `iface` (a DHCP client or the operator moving the machine to another network):
   * every `everyMs`, when the interface's IPv4 address differs from the host's and the kernel has a default route
   * through it via a gateway on the new prefix, `moved` gets the new address and gateway (the role moves there).
   * Stops on close or with the returned function.
   */
  followAddress(iface: string, moved: (cidr: string, gateway: string) => void, everyMs = 500): () => void {
    this.iface(iface);
    const check = () =>
      this.guard(() => {
        const found = (JSON.parse(ip(['-j', 'addr', 'show', 'dev', iface]) || '[]') as AddrInfo[])[0];
        const inet = (found?.addr_info ?? []).filter((a) => a.family === 'inet');
        const current = this.interfaces().find((i) => i.name === iface)!;
        if (inet.length !== 1 || inet[0].local === current.address) return;
        const { local, prefixlen } = inet[0];
        const network = (ipToU32(local) & prefixMask(prefixlen)) >>> 0;
        const routes = JSON.parse(ip(['-j', 'route', 'show', 'default', 'dev', iface]) || '[]') as KernelRoute[];
        const gateway = routes.find(
          (r) => r.gateway && (ipToU32(r.gateway) & prefixMask(prefixlen)) >>> 0 === network,
        )?.gateway;
        if (gateway) moved(`${local}/${prefixlen}`, gateway);
      });
    const timer = setInterval(check, everyMs);
    timer.unref();
    const stop = () => clearInterval(timer);
    this.undo.push({ what: `address follower of ${iface}`, run: stop });
    return stop;
  }

  /** The I/O loops' own counters, summed over the interfaces (docs/engine.md §9 stats()). */
  ioCounters(): Record<string, number> {
    return this.loops.flatCounters();
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
    this.loops.stop();
    if (errors.length) throw new Error(`could not remove everything mipsec added: ${errors.join('; ')}`);
  }

  addInterface(name: string): void {
    throw new Error(
      `host '${this.name}': cannot add interface '${name}': a daemon uses the interfaces its node config names`,
    );
  }

  moveInterface(name: string, _link: string, cidr: string): void {
    const iface = this.iface(name);
    const { address, prefix } = parseCidr(cidr);
    for (const proxied of [...this.proxied].filter((p) => p.endsWith(` ${name}`)))
      this.setProxy(proxied.split(' ')[0], name, false);
    ip(['addr', 'flush', 'dev', name]);
    ip(['neigh', 'flush', 'dev', name]);
    this.removeRoutesThrough(name);
    ip(['addr', 'add', cidr, 'dev', name]);
    this.readdress(iface, address, prefix);
    this.sourceRules();
  }

  /**
   * Answers ARP for `address` on `ifaceName` (`ip neigh replace proxy`). The kernel's ARP answers only for an address
   * it would route from that device — there the fail-closed blackhole (RULE_PREF) stands, and the address is on the
   * same link — so a rule PROXY_RULE_PREF `iif <dev> to <address>/32 lookup main` goes in front of it and the device
   * gets forwarding and proxy_arp_pvlan (its IPv4 ingress is redirected into the TUN: the kernel forwards none of it).
   * All undone when the last proxy entry of the device goes, or on close.
   */
  setProxy(address: string, ifaceName: string, enabled: boolean): void {
    this.iface(ifaceName);
    ipToU32(address);
    const key = `${address} ${ifaceName}`;
    if (enabled === this.proxied.has(key)) return;
    const rule = ['pref', String(PROXY_RULE_PREF), 'iif', ifaceName, 'to', `${address}/32`, 'lookup', 'main'];
    if (enabled) {
      this.proxyArpSysctls(ifaceName);
      // One process for both (a home agent restores every binding at start, each one of these).
      runBatchSync('ip', [
        ['rule', 'add', ...rule],
        ['neigh', 'replace', 'proxy', address, 'dev', ifaceName],
      ]);
      this.proxied.add(key);
      this.undo.push({ what: `proxy ARP for ${address}`, run: () => this.setProxy(address, ifaceName, false) });
    } else {
      this.proxied.delete(key);
      // The neighbour last: a failed `ip neigh` ends the batch even under -force (its entry goes when the device is
      // flushed on a move), and the rule must go in any case.
      quietBatch([
        ['rule', 'del', ...rule],
        ['neigh', 'del', 'proxy', address, 'dev', ifaceName],
      ]);
    }
  }

  /** forwarding and proxy_arp_pvlan on for `dev` (once; the old values come back on close). */
  private proxyArpSysctls(dev: string): void {
    if (this.proxySysctls.has(dev)) return;
    this.proxySysctls.add(dev);
    for (const key of ['forwarding', 'proxy_arp_pvlan']) {
      const file = `/proc/sys/net/ipv4/conf/${dev}/${key}`;
      const was = fs.readFileSync(file, 'utf8').trim();
      if (was === '1') continue;
      fs.writeFileSync(file, '1');
      this.undo.push({ what: `${key} of ${dev}`, run: () => fs.existsSync(file) && fs.writeFileSync(file, was) });
    }
  }

  /** Applications can bind it: an address on lo (removed again on close). */
  protected override localAddressAdded(address: string): void {
    ip(['addr', 'replace', `${address}/32`, 'dev', 'lo']);
    this.undo.push({ what: `local address ${address}`, run: () => this.removeLocalAddress(address) });
  }

  protected override localAddressRemoved(address: string): void {
    quietly('ip', ['addr', 'del', `${address}/32`, 'dev', 'lo']);
  }

  /** The kernel's main table mirrors the routes the roles add: it routes what the raw socket sends. */
  protected override routeAdded(prefix: Prefix, via: string | undefined, iface: string): void {
    const text = prefixString(prefix);
    ip(['route', 'replace', text, ...(via ? ['via', via] : []), 'dev', iface]);
    if (this.addedRoutes.has(text)) return;
    this.addedRoutes.add(text);
    this.undo.push({ what: `route ${text}`, run: () => this.addedRoutes.has(text) && this.routeRemoved(prefix) });
  }

  protected override routeRemoved(prefix: Prefix): void {
    this.addedRoutes.delete(prefixString(prefix));
    quietly('ip', ['route', 'del', prefixString(prefix)]);
  }

  protected override defer(run: () => void): void {
    setImmediate(() => this.guard(run));
  }

  protected override linkName(iface: CoreInterface): string {
    return iface.name;
  }

  /** The route's interface's loop: the kernel routes the packet by its table and resolves the next hop with ARP. */
  protected override transmit(
    packet: Uint8Array,
    iface: CoreInterface,
    _nextHop: number,
    carries?: Uint8Array,
  ): boolean {
    return !this.closed && this.loops.inject(iface.name, [{ packet, via: 'raw', carries }]);
  }

  private guard(run: () => void): void {
    if (this.closed) return;
    try {
      run();
    } catch (error) {
      this.onError(error);
    }
  }
}
