// Certificate discovery requests an inside host (a visiting SMN, a nested SGW) sent out through this
// SGW, remembered briefly so that only their answers come back in: a datagram from UDP port 1640
// is let in when it answers one of them (same hosts, ports, id and name), once, and not otherwise.
// The SGW's own requests are answered to the SGW itself and checked by its CertificateDiscovery.
import { formatName } from '../../keys/names.js';
import type { Clock } from '../../net/types.js';
import type { Discovery } from '../common/signalling.js';

/** Longer than a discovery exchange (3 attempts of 500 ms): a late answer is refused, as its asker gave up. */
const CROSSING_MS = 5_000;
/** Remembered requests at most; the oldest is forgotten first. */
const MAX_CROSSINGS = 1024;

export class DiscoveryCrossings {
  /** Insertion order is age order: the first entry is the oldest. */
  private readonly expires = new Map<string, number>();

  constructor(private readonly clock: Clock) {}

  /** A request leaving from inside. */
  sent(request: Discovery): void {
    const key = crossingKey(request.src, request.srcPort, request.dst, request);
    this.expires.delete(key);
    if (this.expires.size >= MAX_CROSSINGS) this.expires.delete(this.expires.keys().next().value!);
    this.expires.set(key, this.clock.now() + CROSSING_MS);
  }

  /** Whether an answer arriving from outside matches a live request (which it then uses up). */
  answers(answer: Discovery): boolean {
    if (answer.message.type === 'request') return false;
    const key = crossingKey(answer.dst, answer.dstPort, answer.src, answer);
    const expiresAt = this.expires.get(key);
    this.expires.delete(key);
    return expiresAt !== undefined && expiresAt > this.clock.now();
  }
}

/** (inside host, its port, the peer asked, request id, name asked for). */
function crossingKey(inside: number, port: number, peer: number, d: Discovery): string {
  return `${inside}:${port}>${peer}#${d.message.id}/${formatName(d.message.name)}`;
}
