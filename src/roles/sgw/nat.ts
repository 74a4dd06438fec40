// §3.5: "If SMN is in the SGW-protected network the Care-of address is translated to a global
// address at the SGW of that network." A small UDP source NAT for datagrams an SGW lets out as
// usual IP: inside address and port ↔ a port of the SGW's outside address. Filtering is endpoint-
// dependent (an answer must come from the remote address and port the mapping was made for, not from
// anyone who learns the port) and ports are drawn at random, so they cannot be guessed in sequence.
import { randomInt } from 'node:crypto';
import type { Clock } from '../../net/types.js';
import { buildUdpDatagram, parseUdpDatagram } from '../../wire/udp.js';
import { parseIpv4 } from '../../wire/ipv4.js';

const FIRST_PORT = 20000;
const LAST_PORT = 29999;
/** A mapping nobody used for this long is forgotten. */
const IDLE_MS = 120_000;

interface Mapping {
  inside: number;
  insidePort: number;
  remote: number;
  remotePort: number;
  port: number;
  usedAt: number;
}

export class UdpSourceNat {
  private readonly byInside = new Map<string, Mapping>();
  private readonly byPort = new Map<number, Mapping>();

  constructor(
    private readonly clock: Clock,
    private readonly global: number,
  ) {}

  /** The datagram as it leaves with the global address, or undefined when it is not UDP or no port is free. */
  outbound(datagram: Uint8Array): Uint8Array | undefined {
    const udp = parseUdpDatagram(datagram);
    if (!udp.ok) return undefined;
    const u = udp.udp;
    const key = flowKey(u.src, u.srcPort, u.dst, u.dstPort);
    let m = this.byInside.get(key);
    if (!m) {
      const port = this.freePort();
      if (port === undefined) return undefined;
      m = { inside: u.src, insidePort: u.srcPort, remote: u.dst, remotePort: u.dstPort, port, usedAt: 0 };
      this.byInside.set(key, m);
      this.byPort.set(port, m);
    }
    m.usedAt = this.clock.now();
    return buildUdpDatagram(
      { src: this.global, dst: u.dst, srcPort: m.port, dstPort: u.dstPort, ttl: ttlOf(datagram) },
      u.payload,
    );
  }

  /**
   * A datagram to a mapped port of the global address from that mapping's remote end, readdressed inside; undefined
   * otherwise.
   */
  inbound(datagram: Uint8Array): Uint8Array | undefined {
    const udp = parseUdpDatagram(datagram);
    if (!udp.ok || udp.udp.dst !== this.global) return undefined;
    const m = this.byPort.get(udp.udp.dstPort);
    if (!m || m.remote !== udp.udp.src || m.remotePort !== udp.udp.srcPort) return undefined;
    m.usedAt = this.clock.now();
    return buildUdpDatagram(
      { src: udp.udp.src, dst: m.inside, srcPort: udp.udp.srcPort, dstPort: m.insidePort, ttl: ttlOf(datagram) },
      udp.udp.payload,
    );
  }

  /** A port no live mapping holds: a random one, scanning on from it when taken (so a full table is found full). */
  private freePort(): number | undefined {
    const now = this.clock.now();
    const span = LAST_PORT - FIRST_PORT + 1;
    const start = randomInt(0, span);
    for (let i = 0; i < span; i++) {
      const port = FIRST_PORT + ((start + i) % span);
      const old = this.byPort.get(port);
      if (old && now - old.usedAt < IDLE_MS) continue;
      if (old) this.byInside.delete(flowKey(old.inside, old.insidePort, old.remote, old.remotePort));
      return port;
    }
    return undefined;
  }
}

function flowKey(inside: number, insidePort: number, remote: number, remotePort: number): string {
  return `${inside}:${insidePort}>${remote}:${remotePort}`;
}

/** The forwarded datagram's TTL, one less than it arrived with. */
function ttlOf(datagram: Uint8Array): number {
  const ip = parseIpv4(datagram, 0);
  return ip.ok ? Math.max(1, ip.header.ttl - 1) : 64;
}
