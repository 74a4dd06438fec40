// The mobile node's end of the HA's IP-in-IP tunnel with a co-located care-of address (RFC 5944 §3.6, RFC 2003),
// and its reverse tunnel (RFC 3024).
import type { Host } from '../../net/types.js';
import { ipToU32, u32ToIp } from '../../wire/addr.js';
import { parseIpip, writeIpipHeader } from '../../wire/ipip.js';
import { IPV4_HEADER_BYTES, IpProto, parseIpv4 } from '../../wire/ipv4.js';

export interface TunnelEndpointOptions {
  host: Host;
  homeAddress: string;
  homeAgent: string;
  /** Also send this node's own packets (source = home address) back through the HA (RFC 3024). */
  reverseTunnel?: boolean;
  /**
   * 'wire' (default, plain Mobile IP): the tunnel is taken from the input path. 'authenticated' (an SMN): only what
   * open() is handed after an authenticated layer, and bare IP-in-IP to the care-of address is dropped, since its
   * outer source (the HA's address) proves nothing.
   */
  accept?: 'wire' | 'authenticated';
}

export type TunnelEndpointDrop = 'bad_tunnel' | 'ttl_expired' | 'untrusted_tunnel' | 'unauthenticated_tunnel';

/**
 * The mobile node's end of the HA's IP-in-IP tunnel with a co-located care-of address: it
 * decapsulates what the HA tunnels to the care-of address and delivers the inner datagram to
 * the home address; with reverseTunnel it tunnels its own home-addressed traffic to the HA.
 * Active between enterForeign() and returnHome().
 */
export class TunnelEndpoint {
  private readonly host: Host;
  private readonly homeAddress: number;
  private readonly homeAgent: number;
  private readonly reverseTunnel: boolean;
  private readonly authenticatedOnly: boolean;
  private careOf?: number;
  private readonly removeHooks: (() => void)[];
  private readonly drops: Record<TunnelEndpointDrop, number> = {
    bad_tunnel: 0,
    ttl_expired: 0,
    untrusted_tunnel: 0,
    unauthenticated_tunnel: 0,
  };

  constructor(options: TunnelEndpointOptions) {
    this.host = options.host;
    this.homeAddress = ipToU32(options.homeAddress);
    this.homeAgent = ipToU32(options.homeAgent);
    this.reverseTunnel = options.reverseTunnel ?? false;
    this.authenticatedOnly = options.accept === 'authenticated';
    this.removeHooks = [
      this.host.addHook('input', (packet) => (this.fromWire(packet) ? 'consumed' : 'pass')),
      this.host.addHook('output', (packet) => (this.encapsulate(packet) ? 'consumed' : 'pass')),
    ];
  }

  /** Away at `careOf`: the home address stays local to this host, reached through the tunnel. */
  enterForeign(careOf: string): void {
    this.careOf = ipToU32(careOf);
    this.host.addLocalAddress(u32ToIp(this.homeAddress));
  }

  /** Back on the home link, where the home address is on the interface again. */
  returnHome(): void {
    this.careOf = undefined;
    this.host.removeLocalAddress(u32ToIp(this.homeAddress));
  }

  counters(): Readonly<Record<TunnelEndpointDrop, number>> {
    return { ...this.drops };
  }

  close(): void {
    for (const remove of this.removeHooks) remove();
  }

  /**
   * A datagram an authenticated layer delivered: if it is the HA's tunnel to the care-of address, the inner datagram
   * goes to the home stack. Returns false when it is not a tunnel to us (the caller delivers it as it is).
   */
  open(packet: Uint8Array): boolean {
    return this.isTunnelToUs(packet) && this.decapsulate(packet);
  }

  private fromWire(packet: Uint8Array): boolean {
    if (!this.isTunnelToUs(packet)) return false;
    if (!this.authenticatedOnly) return this.decapsulate(packet);
    this.drops.unauthenticated_tunnel++;
    return true;
  }

  private isTunnelToUs(packet: Uint8Array): boolean {
    if (this.careOf === undefined) return false;
    const ip = parseIpv4(packet, 0);
    return ip.ok && ip.header.protocol === IpProto.IPIP && ip.header.dst === this.careOf;
  }

  private decapsulate(packet: Uint8Array): boolean {
    const parsed = parseIpip(packet, 0);
    if (!parsed.ok) {
      this.drops[parsed.reason === 'ttl_expired' ? 'ttl_expired' : 'bad_tunnel']++;
      return true;
    }
    // RFC 2003 §6.2: accept only the HA's tunnel carrying traffic for our home address.
    if (parsed.outer.src !== this.homeAgent || parsed.inner.dst !== this.homeAddress) {
      this.drops.untrusted_tunnel++;
      return true;
    }
    this.host.inject(packet.subarray(parsed.innerOffset, parsed.innerOffset + parsed.inner.totalLength), {
      bypassHooks: true,
    });
    return true;
  }

  private encapsulate(packet: Uint8Array): boolean {
    if (!this.reverseTunnel || this.careOf === undefined) return false;
    const ip = parseIpv4(packet, 0);
    if (!ip.ok || ip.header.src !== this.homeAddress) return false;
    const out = new Uint8Array(IPV4_HEADER_BYTES + ip.header.totalLength);
    out.set(packet.subarray(0, ip.header.totalLength), IPV4_HEADER_BYTES);
    writeIpipHeader(out, 0, ip.header, this.careOf, this.homeAgent);
    this.host.send(out, { bypassHooks: true });
    return true;
  }
}
