// Host routes an SGW learns from the layers it relays (a care-of or host address behind the next SGW), so the
// next packets stay in the engine. Each costs a punted packet, so they are bounded per next-hop peer and
// overall, and forgotten a fixed time after they were learned: the engine forwards on a route without telling
// the role, so use is not visible here; an expired route's next packet punts, is relayed by the role and
// learns the route again (issue 10 hole 11). Changes reach the engine once per flush, not once per route.
import type { Clock } from '../../net/types.js';
import type { Sgw } from '../../topology/map.js';
import type { Tally } from '../common/counters.js';
import type { RouteIntent } from './routes.js';

export const DEFAULT_LEARNED_ROUTES_PER_PEER = 1024;
export const DEFAULT_LEARNED_ROUTES = 4096;
export const DEFAULT_LEARNED_ROUTE_MS = 60_000;

export interface LearnedRouteLimits {
  /** Routes relayed through one next-hop SGW (or forwarded as they are: one more peer). */
  perPeer?: number;
  total?: number;
  /** Lifetime of a learned route. */
  ttlMs?: number;
}

interface Learned {
  via?: Sgw;
  until: number;
}

const peerOf = (via: Sgw | undefined): string => via?.name ?? '(forward as is)';

export class LearnedRoutes {
  /** Insertion order is expiry order: every route lives ttlMs from when it was set. */
  private readonly routes = new Map<string, Learned>();
  private readonly perPeer = new Map<string, number>();
  private changed = false;
  private readonly limits: Required<LearnedRouteLimits>;

  constructor(
    private readonly clock: Clock,
    private readonly tally: Tally,
    limits: LearnedRouteLimits = {},
  ) {
    this.limits = {
      perPeer: DEFAULT_LEARNED_ROUTES_PER_PEER,
      total: DEFAULT_LEARNED_ROUTES,
      ttlMs: DEFAULT_LEARNED_ROUTE_MS,
      ...limits,
    };
    for (const [name, value] of Object.entries(this.limits)) {
      if (!Number.isInteger(value) || value < 1)
        throw new RangeError(`learned routes: ${name} must be a positive integer, got ${value}`);
    }
  }

  /** Remembers prefix → via, unless a limit is reached (counted as route_limit_peer / route_limit_total). */
  learn(prefix: string, via: Sgw | undefined): void {
    const known = this.routes.get(prefix);
    // `known?.via === via` would take an unknown prefix for a known forward-as-is route (both undefined).
    if (known && known.via === via) return;
    if (known) this.forget(prefix, known);
    const peer = peerOf(via);
    if ((this.perPeer.get(peer) ?? 0) >= this.limits.perPeer) return this.tally.add('route_limit_peer');
    if (this.routes.size >= this.limits.total) return this.tally.add('route_limit_total');
    this.routes.set(prefix, { via, until: this.clock.now() + this.limits.ttlMs });
    this.perPeer.set(peer, (this.perPeer.get(peer) ?? 0) + 1);
    this.changed = true;
  }

  /** Forgets expired routes (counted as route_expired); true when the engine's routes must be set again. */
  takeChanges(): boolean {
    const now = this.clock.now();
    for (const [prefix, route] of this.routes) {
      if (route.until > now) break;
      this.forget(prefix, route);
      this.tally.add('route_expired');
    }
    const changed = this.changed;
    this.changed = false;
    return changed;
  }

  intents(): RouteIntent[] {
    return [...this.routes].map(([prefix, { via }]) => ({ prefix, via }));
  }

  get size(): number {
    return this.routes.size;
  }

  private forget(prefix: string, route: Learned): void {
    this.routes.delete(prefix);
    const peer = peerOf(route.via);
    const left = (this.perPeer.get(peer) ?? 1) - 1;
    if (left > 0) this.perPeer.set(peer, left);
    else this.perPeer.delete(peer);
    this.changed = true;
  }
}
