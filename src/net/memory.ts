// MemoryNetwork: the Network interface (types.ts) on in-process links and a virtual clock.
import { ipToU32, type Prefix } from '../wire/addr.js';
import { VirtualClock } from './clock.js';
import { HostCore, LinkCore, NetworkCore, parseCidr } from './host-core.js';
import type { CapturedPacket, HostOptions, LinkKind, LinkOptions, LossModel } from './types.js';

const DEFAULT_LATENCY_MS = 1;

export interface MemoryNetworkOptions {
  /** Virtual time at the start, in Unix ms (default 2026-01-01T00:00:00Z). */
  startMs?: number;
}

const DEFAULT_START_MS = Date.UTC(2026, 0, 1);

export class MemoryNetwork extends NetworkCore<MemoryHost, MemoryLink> {
  readonly clock: VirtualClock;

  constructor(options: MemoryNetworkOptions = {}) {
    super();
    this.clock = new VirtualClock(options.startMs ?? DEFAULT_START_MS);
  }

  addHost(name: string, options: HostOptions = {}): MemoryHost {
    this.assertNewHost(name);
    return this.registerHost(new MemoryHost(this, name, options.forwarding ?? false));
  }

  addLink(name: string, options: LinkOptions = {}): MemoryLink {
    this.assertNewLink(name);
    return this.registerLink(
      new MemoryLink(this.clock, name, options.kind ?? 'multi', options.latencyMs ?? DEFAULT_LATENCY_MS),
    );
  }

  /**
   * Runs events until the queue is empty, or only those up to `untilMs`. Role timers (lifetimes,
   * re-registrations) count as events, so with roles running use runFor().
   */
  run(untilMs?: number): number {
    return this.clock.run(untilMs);
  }

  /** Runs every event of the next `durationMs` of virtual time. */
  runFor(durationMs: number): number {
    return this.clock.runFor(durationMs);
  }
}

interface MemoryInterface {
  name: string;
  host: MemoryHost;
  link: MemoryLink;
  address: number;
  prefix: Prefix;
  /** Addresses this interface answers for on its link besides its own (proxy ARP). */
  proxies: Set<number>;
}

export class MemoryLink extends LinkCore {
  private readonly attached = new Set<MemoryInterface>();
  private loss: LossModel | undefined;
  private random: () => number = seededRandom(1);
  private framesSent = 0;

  constructor(
    private readonly clock: VirtualClock,
    name: string,
    kind: LinkKind,
    latencyMs: number,
  ) {
    super(name, kind, latencyMs);
    if (!Number.isFinite(latencyMs) || latencyMs < 0)
      throw new RangeError(`link '${name}': latencyMs must be a finite number >= 0, got ${latencyMs}`);
  }

  setLoss(loss: LossModel | undefined, seed = 1): void {
    if (typeof loss === 'number' && !(loss >= 0 && loss < 1))
      throw new RangeError(`link '${this.name}': loss rate must be in [0, 1), got ${loss}`);
    this.loss = loss;
    this.random = seededRandom(seed);
  }

  attach(iface: MemoryInterface): void {
    this.assertRoomFor(this.attached.size);
    this.attached.add(iface);
  }

  detach(iface: MemoryInterface): void {
    this.attached.delete(iface);
  }

  /** Puts a frame for `nextHop` on the link; false when no interface answers for that address. */
  transmit(from: MemoryInterface, nextHop: number, datagram: Uint8Array): boolean {
    const index = this.framesSent++;
    const receiver = this.resolve(from, nextHop);
    let fate: CapturedPacket['fate'] = 'unresolved';
    if (receiver) fate = this.isLost(datagram, index) ? 'lost' : 'delivered';
    const frame: CapturedPacket = {
      time: this.clock.now(),
      link: this.name,
      from: `${from.host.name}/${from.name}`,
      to: receiver ? `${receiver.host.name}/${receiver.name}` : undefined,
      fate,
      packet: datagram.slice(),
    };
    this.record(frame);
    if (receiver && fate === 'delivered') {
      const copy = datagram.slice();
      this.clock.setTimer(this.latencyMs, () => {
        // A frame in flight is lost if the receiver left the link meanwhile (handover).
        if (receiver.link === this && this.attached.has(receiver)) receiver.host.receive(copy, receiver);
      });
    }
    return receiver !== undefined;
  }

  private resolve(from: MemoryInterface, nextHop: number): MemoryInterface | undefined {
    const others = [...this.attached].filter((iface) => iface !== from);
    if (this.kind === 'p2p') return others[0];
    return others.find((iface) => iface.address === nextHop) ?? others.find((iface) => iface.proxies.has(nextHop));
  }

  private isLost(datagram: Uint8Array, index: number): boolean {
    if (this.loss === undefined) return false;
    if (typeof this.loss === 'number') return this.random() < this.loss;
    return this.loss(datagram, index);
  }
}

export class MemoryHost extends HostCore<MemoryInterface> {
  constructor(
    private readonly network: MemoryNetwork,
    name: string,
    forwarding: boolean,
  ) {
    super(name, forwarding, network.clock);
  }

  addInterface(name: string, link: string, cidr: string): void {
    this.assertNewInterface(name);
    const { address, prefix } = parseCidr(cidr);
    const iface: MemoryInterface = {
      name,
      host: this,
      link: this.network.link(link),
      address,
      prefix,
      proxies: new Set(),
    };
    iface.link.attach(iface);
    this.registerInterface(iface);
  }

  moveInterface(name: string, link: string, cidr: string): void {
    const iface = this.iface(name);
    const { address, prefix } = parseCidr(cidr);
    const target = this.network.link(link);
    if (target !== iface.link) {
      target.attach(iface);
      iface.link.detach(iface);
    }
    iface.link = target;
    iface.proxies.clear();
    this.removeRoutesThrough(name);
    this.readdress(iface, address, prefix);
  }

  setProxy(address: string, iface: string, enabled: boolean): void {
    const proxies = this.iface(iface).proxies;
    if (enabled) proxies.add(ipToU32(address));
    else proxies.delete(ipToU32(address));
  }

  protected override defer(run: () => void): void {
    this.network.clock.setTimer(0, run);
  }

  protected override linkName(iface: MemoryInterface): string {
    return iface.link.name;
  }

  protected override transmit(packet: Uint8Array, iface: MemoryInterface, nextHop: number): boolean {
    return iface.link.transmit(iface, nextHop, packet);
  }
}

/** mulberry32: a small seeded generator, so loss patterns repeat run to run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
