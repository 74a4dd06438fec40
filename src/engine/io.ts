// The native I/O loop (native/io/, DESIGN §1 and §5): worker threads read a TUN device and raw IPv4 sockets,
// run the engine and write the results without entering JavaScript. JS sees only the punts, in batches, and
// re-injects packets after it has acted on them.
import { ipToU32 } from '../wire/addr.js';
import { NativeEngine } from './native.js';
import { reasonName, type ReasonName } from './types.js';

/** Where a punted packet was read: the TUN (OUTBOUND ran) or a raw socket (INBOUND ran). */
export type PuntOrigin = 'tun' | 'raw';

export interface PuntedPacket {
  /** The packet as the engine left it (docs/engine.md §3: re-injectable as it is). A copy owned by JS. */
  packet: Uint8Array;
  reason: ReasonName;
  from: PuntOrigin;
  /** The SA that had authenticated the packet when it was punted, 0 if none. */
  sa: number;
}

/**
 * How an injected packet re-enters the loop: `outbound` runs OUTBOUND (as if read from the TUN), `inbound`
 * runs INBOUND (as if received on a raw socket), then the verdict is carried out as for a packet read there;
 * `tun` writes it to the TUN as it is; `raw` sends it out of the raw socket as it is, to its IPv4 destination.
 */
export type InjectVia = 'outbound' | 'inbound' | 'tun' | 'raw';

export interface InjectPacket {
  packet: Uint8Array;
  via: InjectVia;
  /**
   * `raw`: the datagram a sealed packet carries (its first 68 bytes are kept). If the link refuses the packet as
   * too big and the datagram has DF, its sender gets ICMP 3/4 with the MTU that fits, sent out of the raw socket.
   */
  carries?: Uint8Array;
}

export interface IoLoopOptions {
  /** The native engine whose tables the workers use; closing it stops the loop. */
  engine: NativeEngine;
  /** A namespace made by `ip netns add NAME`: the loop's TUN and sockets are created inside it. */
  netns?: string;
  tun: {
    /** Device name (created if missing, removed when the loop stops). */
    name: string;
    /**
     * Default 1300: room on a 1500-byte link for the End-End layer in SKIP mode with AH (~150 bytes) and one
     * next-hop layer (~110 bytes more each). A sealed packet the link refuses is counted (stats().txTooBig); if the
     * datagram had DF, its sender gets an ICMP "fragmentation needed" with the MTU that fits. At most MAX_PACKET.
     */
    mtu?: number;
    /** Interface addresses 'a.b.c.d/len' (the kernel adds the prefix routes into the TUN). */
    addresses?: readonly string[];
    /**
     * IFF_VNET_HDR with checksum and TCP segmentation offload (default true): the kernel hands TCP over in
     * super-packets of up to 64 KiB, one read each; the loop splits them into MSS-sized datagrams before OUTBOUND,
     * and writes consecutive delivered segments of one TCP flow back as one super-packet (GRO-style).
     */
    offload?: boolean;
  };
  /** Raw IPv4 sockets for SKIP, AH, ESP and IP-in-IP (receive) and IP_HDRINCL (send): always on. */
  raw: true;
  /**
   * The UDP transport (docs/engine.md §9.1): send every SKIP, AH, ESP and IP-in-IP packet whole — its own IPv4
   * header included — as the payload of a UDP datagram from and to this port, so the kernel moves them in
   * segmentation-offload batches (UDP_SEGMENT / UDP_GRO). Every gateway this loop sends to must use the same
   * port; packets arriving on the raw sockets are still accepted. Unset: the raw socket carries everything.
   * A carried packet grows by 28 bytes on the wire: lower tun.mtu by as much.
   */
  udpPort?: number;
  /**
   * After handling packets, each worker keeps polling for this many µs (yielding the CPU to any runnable
   * thread) before it sleeps, so a packet arriving within it costs no wakeup — on a VM a cross-CPU wakeup
   * costs tens of µs per hop. Costs idle CPU after traffic; 0 (default) sleeps at once. At most 100000.
   */
  pollMicros?: number;
  /**
   * The workers' nice value, -20..19, each set on its own thread (Linux keeps one per thread); default: that of the
   * thread starting the loop. A daemon gives them its base value and runs its control thread above them.
   */
  workerNice?: number;
  /**
   * A FORWARD the engine left plain (a `bypass` or `pass`: SA 0, no layer) that was read from the TUN goes back into
   * it, coalesced, for the kernel to carry on by its routes (one GSO super-packet where the raw socket sends each
   * segment), with the TTL the policy gave it. The host must let the kernel forward what arrives on the TUN
   * (`forwarding`, and `accept_local` when it carries the host's own sources). Default false: the raw socket sends it.
   */
  plainByKernel?: boolean;
  /** Worker threads (default 1). With more, flows are spread by a hash so none is reordered. */
  workers?: number;
  /**
   * The raw receivers and the UDP transport take only what arrives on this interface (the rest is counted as
   * rxForeignInterface); the UDP socket is bound to it (SO_BINDTODEVICE). Unset: every interface.
   */
  bindInterface?: string;
  /**
   * The policy table OUTBOUND uses (its arg0, docs/engine.md §4.2) for packets read from the TUN and for
   * `via: 'outbound'` injects: the table the role fills for this interface. Default 0.
   */
  tunTable?: number;
  /**
   * What a DELIVER that an SA authenticated is for: 'tun' (default) — the host behind the TUN; 'route' — the
   * kernel forwards it on by its routes: it is written into the TUN the same way (coalesced), and the TUN's owner
   * turns forwarding on for that device only. With 'route', a DELIVER addressed to one of the engine's local
   * addresses (setLocalAddresses) is punted `deliver_local` with its SA (the kernel's own reply would leave in
   * clear), one with TTL <= 1 is punted `ttl_exceeded` (so would the kernel's "time exceeded"), and the ICMP 3/4 for
   * a packet read from the TUN goes back by route too.
   */
  deliver?: 'tun' | 'route';
  /**
   * With deliver 'route': a DELIVER that is IP-in-IP from `from` (a home agent) to one of the engine's local
   * addresses, whole, carrying a datagram to `to` (an address the kernel owns, whose replies the engine's tables
   * seal: an SMN's home address on its application TUN), is peeled and the inner datagram written into the TUN for
   * the kernel to deliver, instead of being punted deliver_local (RFC 2003 §6.2's checks, as the SMN's JS tunnel
   * endpoint makes them). With `protocol` (1..255) only an inner datagram of that IP protocol is (a lab host whose
   * JS probes need the rest). Anything else stays as `deliver` says.
   */
  kernelTunnel?: { from: string; to: string; protocol?: number };
  /** Called on the JS thread with every packet the engine punted since the last call. */
  onPunt: (packets: PuntedPacket[]) => void;
}

/** The loop's own counters; drops by reason are the engine's counters(). */
export interface IoStats {
  /** Reads from the TUN (a super-packet counts once). */
  rxTun: number;
  /** TCP super-packets split into segments (offload on). */
  rxGso: number;
  rxRaw: number;
  rxSkip: number;
  rxAh: number;
  rxEsp: number;
  rxIpip: number;
  /** Datagrams larger than a batch slot (dropped by the engine as truncated). */
  rxTooBig: number;
  rxErrors: number;
  txRaw: number;
  /** Datagrams written to the TUN (a coalesced run counts each of its segments). */
  txTun: number;
  /** Runs of one TCP flow written to the TUN as one super-packet (offload on). */
  txGro: number;
  /** Sealed packets the kernel refused as larger than the outgoing link's MTU: lower tun.mtu. */
  txTooBig: number;
  /** ICMP "fragmentation needed" (RFC 1191) written into the TUN for those of them sent with DF. */
  txFragNeeded: number;
  /** Other sends the kernel refused (no route, …). */
  txErrors: number;
  punted: number;
  /** Punts lost because JS had not drained the bounded punt queue (4096 packets). */
  puntDropped: number;
  injected: number;
  /** Injected packets refused: over MAX_PACKET bytes, or the worker's inject queue (4096) was full. */
  injectDropped: number;
  /** Packets received over the UDP transport (each segment of a GRO super-datagram counts). */
  rxUdp: number;
  /** GRO super-datagrams received (more than one packet in one read). */
  rxUdpGro: number;
  /** Packets sent over the UDP transport. */
  txUdp: number;
  /** UDP_SEGMENT sends (more than one packet in one datagram the kernel segments). */
  txUdpGso: number;
  /**
   * Datagrams the engine peeled out of bare IP-in-IP, which no SA authenticated: punted by INBOUND as not_ipsec
   * for the control plane to judge, never written to the TUN.
   */
  rxUnauthenticated: number;
  /**
   * Packets on the UDP transport whose own IPv4 destination is not the address the datagram came to: dropped
   * before the engine (a raw socket only sees packets for this host; over UDP the sender writes the header).
   */
  rxUdpMisaddressed: number;
  /** SKIP, AH, ESP, IP-in-IP or UDP-transport packets that arrived on another interface than bindInterface. */
  rxForeignInterface: number;
  /**
   * Packets whose verdict the loop carried out without JavaScript: FORWARD (sent on), DELIVER (into the TUN or, with
   * deliver 'route', out by the kernel's routes) and DROP. Sends the kernel refused are in txTooBig / txErrors too.
   */
  fastPath: number;
  /**
   * Packets under a SKIP key whose first packet was punted moments before (100 ms): held in the loop until the tables
   * change (its SA went in), then run through the engine in arrival order, instead of each being punted too.
   */
  heldForKey: number;
  /** Held packets dropped because no SA came within those 100 ms. */
  heldExpired: number;
  /**
   * Datagrams without DF whose sealed packet the link refused as too big (counted in txTooBig too): split into
   * fragments that fit once sealed, each sealed on its own (pre-fragmentation; the destination reassembles).
   */
  txSplit: number;
  /** Workers that could not set the workerNice asked of them (lower than inherited, without CAP_SYS_NICE). */
  niceRefused: number;
  /** Plain FORWARDs (bypass, pass) read from the TUN, written back into it for the kernel to carry (plainByKernel). */
  txKernel: number;
  /** The punts handed to onPunt (`punted`), by reason: the slow path's share of each reason. */
  puntReasons: Record<ReasonName, number>;
  /** CPU time the worker threads have used, µs (kept after stop()): over the packets handled, what one costs. */
  cpuMicros: number;
}

/**
 * IoStats as one flat record of numbers (a daemon's `counters.io`, the metric mipsec_io_total): every counter by its
 * name, and each reason of `puntReasons` that was punted at least once as `punted_<reason>`.
 */
export function flatIoStats(stats: IoStats): Record<string, number> {
  const { puntReasons, ...counters } = stats;
  const flat: Record<string, number> = { ...counters };
  for (const [reason, n] of Object.entries(puntReasons)) if (n > 0) flat[`punted_${reason}`] = n;
  return flat;
}

/** inject()'s staging buffer: its default size, and the size beyond which it is not kept. */
const STAGING_BYTES = 64 * 1024;
const STAGING_KEEP_BYTES = 1 << 20;

// The loop's side of the ABI; test/engine/abi.test.ts compares each with the addon's binding.abi.
/** The largest packet the loop reads or takes injected (a batch slot less head- and tailroom): the TUN MTU cap. */
export const MAX_PACKET = 3520;
export const VIA_CODE: Readonly<Record<InjectVia, number>> = { outbound: 0, inbound: 1, tun: 2, raw: 3 };
export const ORIGIN_CODE: Readonly<Record<PuntOrigin, number>> = { tun: 0, raw: 1 };
const ORIGIN: PuntOrigin[] = [];
for (const [origin, code] of Object.entries(ORIGIN_CODE)) ORIGIN[code] = origin as PuntOrigin;
/** onPunt's meta words per packet: offset, length, reason, from, sa. */
export const PUNT_META_WORDS = 5;
/** inject()'s meta words per packet: offset, length, via, quote length. */
export const INJECT_META_WORDS = 4;
/** The loop's counters by name: every IoStats field but the two that are not plain counters. */
export type IoCounter = Exclude<keyof IoStats, 'puntReasons' | 'cpuMicros'>;
/** An IPv4 header with options and 8 bytes of its payload: what an ICMP error quotes (native kIcmpQuoteMax). */
export const ICMP_QUOTE_MAX = 68;

const quoteOf = (p: InjectPacket) => (p.carries ?? new Uint8Array(0)).subarray(0, ICMP_QUOTE_MAX);
const NETNS_NAME = /^[A-Za-z0-9_.-]{1,200}$/;

function interfaceAddress(text: string, i: number): [number, number] {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(typeof text === 'string' ? text : '');
  if (!m || Number(m[2]) > 32)
    throw new RangeError(`tun.addresses[${i}] must be 'a.b.c.d/len' with len 0..32, got ${String(text)}`);
  try {
    return [ipToU32(m[1]), Number(m[2])];
  } catch (err) {
    throw new RangeError(`tun.addresses[${i}]: ${(err as Error).message}`);
  }
}

export class IoLoop {
  private readonly native: any;
  private readonly unhook: () => void;
  private staging = new Uint8Array(STAGING_BYTES);
  private stagingMeta = new Uint32Array(64 * INJECT_META_WORDS);

  private constructor(native: any, unhook: () => void) {
    this.native = native;
    this.unhook = unhook;
  }

  /** Opens the TUN and raw sockets (inside `netns`), configures the TUN and starts the workers. Throws why not. */
  static start(options: IoLoopOptions): IoLoop {
    const {
      engine,
      netns,
      tun,
      workers = 1,
      udpPort = 0,
      pollMicros = 0,
      workerNice,
      plainByKernel = false,
      bindInterface,
      tunTable = 0,
      deliver = 'tun',
      onPunt,
    } = options;
    if (!(engine instanceof NativeEngine)) {
      throw new TypeError(
        "IoLoop needs the native engine (createEngine('native')); the TypeScript path has no native threads to run it",
      );
    }
    if (options.raw !== true)
      throw new TypeError('IoLoop: raw must be true (the raw IPv4 sockets carry every protected packet)');
    if (netns !== undefined && !NETNS_NAME.test(netns))
      throw new RangeError(`netns must be a namespace NAME (as in /var/run/netns/NAME), got ${String(netns)}`);
    if (typeof tun?.name !== 'string' || tun.name.length < 1 || tun.name.length > 15)
      throw new RangeError('tun.name must be 1..15 characters');
    const mtu = tun.mtu ?? 1300;
    if (!Number.isInteger(mtu) || mtu < 576 || mtu > MAX_PACKET) {
      throw new RangeError(`tun.mtu must be an integer 576..${MAX_PACKET}, got ${String(tun.mtu)}`);
    }
    if (!Number.isInteger(workers) || workers < 1 || workers > 64)
      throw new RangeError(`workers must be an integer 1..64, got ${String(workers)}`);
    if (options.udpPort !== undefined && (!Number.isInteger(udpPort) || udpPort < 1 || udpPort > 65535)) {
      throw new RangeError(
        `udpPort must be a UDP port 1..65535 (the same on every gateway), got ${String(options.udpPort)}`,
      );
    }
    if (!Number.isInteger(pollMicros) || pollMicros < 0 || pollMicros > 100_000) {
      throw new RangeError(
        `pollMicros must be an integer 0..100000 (µs of polling before a worker sleeps), got ` +
          `${String(options.pollMicros)}`,
      );
    }
    if (workerNice !== undefined && (!Number.isInteger(workerNice) || workerNice < -20 || workerNice > 19))
      throw new RangeError(`workerNice must be an integer -20..19 (a nice value), got ${String(workerNice)}`);
    if (typeof plainByKernel !== 'boolean') throw new TypeError('plainByKernel must be a boolean');
    if (
      bindInterface !== undefined &&
      (typeof bindInterface !== 'string' || bindInterface.length < 1 || bindInterface.length > 15)
    ) {
      throw new RangeError(`bindInterface must be an interface name of 1..15 characters, got ${String(bindInterface)}`);
    }
    if (!Number.isInteger(tunTable) || tunTable < 0 || tunTable > 0xffff_ffff)
      throw new RangeError(`tunTable must be a policy table id 0..4294967295, got ${String(options.tunTable)}`);
    if (deliver !== 'tun' && deliver !== 'route')
      throw new RangeError(`deliver must be 'tun' or 'route', got ${String(options.deliver)}`);
    const { kernelTunnel } = options;
    if (kernelTunnel !== undefined && deliver !== 'route') throw new RangeError("kernelTunnel needs deliver 'route'");
    const tunnelFrom = kernelTunnel ? ipToU32(kernelTunnel.from) : 0;
    const tunnelTo = kernelTunnel ? ipToU32(kernelTunnel.to) : 0;
    const tunnelProtocol = kernelTunnel?.protocol ?? 0;
    if (!Number.isInteger(tunnelProtocol) || tunnelProtocol < 0 || tunnelProtocol > 255)
      throw new RangeError(
        `kernelTunnel.protocol must be an IP protocol 1..255, got ${String(kernelTunnel?.protocol)}`,
      );
    if (typeof onPunt !== 'function') throw new TypeError('onPunt must be a function (packets) => void');
    const addresses = Uint32Array.from((tun.addresses ?? []).flatMap(interfaceAddress));

    const native = new engine.binding.IoLoop(engine.addonEngine, (bytes: Uint8Array, meta: Uint32Array) => {
      const packets: PuntedPacket[] = [];
      for (let i = 0; i < meta.length; i += PUNT_META_WORDS) {
        packets.push({
          packet: bytes.subarray(meta[i], meta[i] + meta[i + 1]),
          reason: reasonName[meta[i + 2]],
          from: ORIGIN[meta[i + 3]],
          sa: meta[i + 4],
        });
      }
      onPunt(packets);
    });
    if (tun.offload !== undefined && typeof tun.offload !== 'boolean')
      throw new TypeError('tun.offload must be a boolean');
    native.start({
      netns,
      tunName: tun.name,
      mtu,
      addresses,
      workers,
      offload: tun.offload ?? true,
      udpPort,
      pollMicros,
      workerNice,
      plainByKernel,
      bindInterface,
      tunTable,
      deliverRoute: deliver === 'route',
      tunnelFrom,
      tunnelTo,
      tunnelProtocol,
    });
    const loop: IoLoop = new IoLoop(
      native,
      engine.onClose(() => loop.stop()),
    );
    return loop;
  }

  /** Hands packets to the workers (copied); returns how many were taken (the rest count as injectDropped). */
  inject(packets: readonly InjectPacket[]): number {
    let total = 0;
    packets.forEach((p, i) => {
      if (!(p?.packet instanceof Uint8Array)) throw new TypeError(`inject: packets[${i}].packet must be a Uint8Array`);
      if (!(p.via in VIA_CODE))
        throw new RangeError(
          `inject: packets[${i}].via must be 'outbound', 'inbound', 'tun' or 'raw', got ${String(p.via)}`,
        );
      if (p.carries !== undefined && !(p.carries instanceof Uint8Array)) {
        throw new TypeError(`inject: packets[${i}].carries must be a Uint8Array`);
      }
      total += p.packet.length + quoteOf(p).length;
    });
    // Each packet, then the quote of what it carries (native/node/io_loop.cc), staged in this loop's reused buffers:
    // the addon copies them into the workers' queues before it returns, so a daemon that injects packet by packet
    // allocates no ArrayBuffer per packet (freed only by a later GC, those fragmented the malloc heap).
    if (this.staging.length < total) this.staging = new Uint8Array(Math.max(total, 2 * this.staging.length));
    const metaWords = packets.length * INJECT_META_WORDS;
    if (this.stagingMeta.length < metaWords) {
      this.stagingMeta = new Uint32Array(Math.max(metaWords, 2 * this.stagingMeta.length));
    }
    const bytes = this.staging;
    const meta = this.stagingMeta;
    let at = 0;
    packets.forEach((p, i) => {
      const quote = quoteOf(p);
      bytes.set(p.packet, at);
      bytes.set(quote, at + p.packet.length);
      const m = i * INJECT_META_WORDS;
      meta[m] = at;
      meta[m + 1] = p.packet.length;
      meta[m + 2] = VIA_CODE[p.via];
      meta[m + 3] = quote.length;
      at += p.packet.length + quote.length;
    });
    const taken = this.native.inject(bytes.subarray(0, total), meta.subarray(0, metaWords));
    // One large injection does not pin its buffer: beyond 1 MiB it goes back to the default size.
    if (this.staging.length > STAGING_KEEP_BYTES) this.staging = new Uint8Array(STAGING_BYTES);
    return taken;
  }

  stats(): IoStats {
    const { puntReasons: byCode, ...counters } = this.native.stats() as Omit<IoStats, 'puntReasons'> & {
      puntReasons: Float64Array;
    };
    const puntReasons = {} as Record<ReasonName, number>;
    reasonName.forEach((name, code) => {
      if (name !== undefined) puntReasons[name] = byCode[code];
    });
    return { ...counters, puntReasons };
  }

  get running(): boolean {
    return this.native.running();
  }

  /** Joins the workers and closes every fd (the TUN device goes away). Idempotent; also runs on engine close. */
  stop(): void {
    this.native.stop();
    this.unhook();
  }
}
