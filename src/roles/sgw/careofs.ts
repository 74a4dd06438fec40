// Where this SGW's own SMNs are while away: care-of address → home address. An entry makes the SGW
// encrypt everything for that address to the SMN, so it is learned only from the HA's accepted
// Registration Reply leaving the home network (an authenticated binding: the HA checked the MN-HA
// authenticator), lives as long as the binding, and never shadows what the policy protects
// (careOfShadow). An SMN's own packets, whose outer source it chooses, teach nothing.
import { careOfShadow, type CareOfLookup, type SgwPlace } from '../../policy/sgw.js';
import type { Clock } from '../../net/types.js';
import { toU32 } from '../../topology/map.js';
import { decodeReply, isAccepted, MIP_PORT } from '../../wire/mobileip.js';
import type { UdpDatagram } from '../../wire/udp.js';
import type { Tally } from '../common/counters.js';

interface Binding {
  home: number;
  expiresAt: number;
}

export class CareOfTable implements CareOfLookup {
  /** By care-of address; at most one per home address (a new binding replaces the old one). */
  private readonly byCareOf = new Map<number, Binding>();

  constructor(
    private readonly place: SgwPlace,
    private readonly clock: Clock,
    private readonly tally: Tally,
  ) {}

  get(careOf: number): number | undefined {
    const b = this.byCareOf.get(careOf);
    if (!b) return undefined;
    if (b.expiresAt > this.clock.now()) return b.home;
    this.byCareOf.delete(careOf);
    return undefined;
  }

  has(careOf: number): boolean {
    return this.get(careOf) !== undefined;
  }

  /** Live entries, care-of → home. */
  entries(): [number, number][] {
    return [...this.byCareOf.keys()].flatMap((careOf) => {
      const home = this.get(careOf);
      return home === undefined ? [] : [[careOf, home] as [number, number]];
    });
  }

  /**
   * Reads a UDP datagram leaving from inside: a Registration Reply of an HA behind this SGW updates the table. Returns
   * the care-of address an accepted reply went to (learned, or refused as a shadow), else undefined.
   */
  observe(udp: UdpDatagram): number | undefined {
    if (udp.srcPort !== MIP_PORT) return;
    const reply = decodeReply(udp.payload);
    if (!reply.ok || !isAccepted(reply.message.code)) return;
    const { homeAddress: home, homeAgent, lifetime } = reply.message;
    const ha = this.place.map.homeAgentFor(home);
    if (!ha || ha.sgw !== this.place.self || toU32(ha.address) !== homeAgent || udp.src !== homeAgent) return undefined;
    this.forget(home);
    const careOf = udp.dst;
    // Lifetime 0 or a reply to the home address itself: the SMN deregistered (RFC 5944 §3.8.3).
    if (lifetime === 0 || careOf === home) return careOf;
    if (careOfShadow(this.place, careOf)) {
      this.tally.add('careof_refused_shadow');
      return careOf;
    }
    this.byCareOf.set(careOf, { home, expiresAt: this.clock.now() + lifetime * 1000 });
    this.tally.add('careof_learned');
    return careOf;
  }

  private forget(home: number): void {
    for (const [careOf, b] of this.byCareOf) if (b.home === home) this.byCareOf.delete(careOf);
  }
}
