// How a visiting SMN protects what it sends to one destination, and how failure messages change
// it (draft §3.2, §3.4): send plainly and learn which SGWs want a Next-hop AH (code 4), then
// who must be the End-End peer (code 5). The procedure starts at step 1 ('three-step'), or
// directly at End-End with the SGW the map names ('direct', as §4.4/§4.5 do).
import { toU32, type Sgw, type TopologyMap } from '../../topology/map.js';
import { Icmp40Code } from '../../wire/icmp40.js';
import type { ReceivedFailure } from '../common/failure.js';

export type Procedure = 'direct' | 'three-step';
/** §3.2 step 1 'plain', step 2 'nexthop-plain', step 3 'end'; 'refused' when the visited site does not admit us. */
export type Stage = 'plain' | 'nexthop-plain' | 'end' | 'refused';

export interface PathState {
  dst: number;
  stage: Stage;
  /** End-End peer (stage 'end'). */
  end?: Sgw;
  /** A correspondent outside every VPN-routable site (§3.5): never more than the visited site's Next-hop layers. */
  outside: boolean;
  /** Stage 'refused': when the visited site may be asked again (a refusal that never expired would be a blackhole). */
  refusedUntil?: number;
}

/** How long a code 5 from the visited site keeps a destination refused. */
export const REFUSAL_MS = 30_000;

/** The layers to build, outermost Next-hop first. */
export interface Layers {
  stage: Stage;
  end?: Sgw;
  hops: Sgw[];
}

export class PathTable {
  private readonly paths = new Map<number, PathState>();
  /** SGWs enclosing the care-of address that asked for a Next-hop AH: every destination needs them. */
  private readonly firstHops = new Set<Sgw>();
  /**
   * SGWs further on that asked for a Next-hop AH, by what we sent through them: an End-End peer's name or a
   * destination.
   */
  private readonly laterHops = new Map<string, Set<Sgw>>();
  private careOf = 0;

  constructor(
    private readonly map: TopologyMap,
    private readonly procedure: Procedure,
    /** Border-SGWs the SMN may build a VPN to from outside (§2.4), the home one first. */
    private readonly knownBorders: readonly Sgw[],
    /** The home SGW and HA: registrations always go End-End to the home SGW (§4.4). */
    private readonly home: { sgw: Sgw; homeAgent: number },
    private readonly now: () => number,
  ) {
    if (knownBorders.length === 0) throw new Error('an SMN needs at least one known Border-SGW (draft §2.4)');
  }

  /** A new point of attachment: everything learned about the old one is void. */
  reset(careOf: number): void {
    this.careOf = careOf;
    this.paths.clear();
    this.firstHops.clear();
    this.laterHops.clear();
  }

  layersFor(dst: number): Layers {
    const state = this.state(dst);
    // §3.2 step 1: an ordinary IP packet first, whatever was learned for other destinations.
    if (state.stage === 'plain') return { stage: 'plain', hops: [] };
    const target = state.stage === 'end' && state.end ? state.end.outside : dst;
    const order = this.map.path(this.careOf, target).map((c) => c.sgw);
    const rank = (s: Sgw) => {
      const i = order.indexOf(s);
      return i < 0 ? order.length : i;
    };
    const hops = [...new Set([...this.firstHops, ...this.hopsFor(state)])]
      .filter((s) => s !== state.end)
      .sort((a, b) => rank(a) - rank(b));
    return { stage: state.stage, end: state.end, hops };
  }

  /**
   * Applies a failure message; returns the destinations whose layers changed (their recent packets are worth
   * re-sending).
   */
  onFailure(f: Omit<ReceivedFailure, 'quote'>): { changed: number[]; note: string } {
    const sender = this.map.sgwByAddress(f.from);
    if (!sender) return { changed: [], note: 'failure_from_unknown_node' };
    // Only an SGW the quoted packet crosses (or is addressed to) may change how it is sent: no detour to a stranger.
    if (!this.onPathTo(sender, f.quotedDst)) return { changed: [], note: 'failure_off_path' };
    const affected = [...this.paths.values()].filter((p) => this.targets(p).has(f.quotedDst));
    if (affected.length === 0) return { changed: [], note: 'failure_for_unknown_flow' };
    const enclosesUs = this.encloses(sender);
    const changed: number[] = [];
    for (const p of affected) {
      if (f.code === Icmp40Code.needAuthentication) {
        const set = enclosesUs ? this.firstHops : this.hopsFor(p);
        const known = set.has(sender);
        set.add(sender);
        if (p.stage === 'plain') p.stage = 'nexthop-plain';
        else if (known) continue;
      } else if (f.code === Icmp40Code.needAuthorization) {
        if (enclosesUs) {
          p.stage = 'refused';
          p.refusedUntil = this.now() + REFUSAL_MS;
        } else if (p.outside) continue;
        else if (p.stage === 'end' && p.end === sender) continue;
        else {
          p.stage = 'end';
          p.end = sender;
        }
      } else {
        continue;
      }
      changed.push(p.dst);
    }
    const kind =
      f.code === Icmp40Code.needAuthentication
        ? 'need_nexthop'
        : f.code === Icmp40Code.needAuthorization
          ? enclosesUs
            ? 'visit_refused'
            : 'need_end_end'
          : `code${f.code}`;
    return { changed, note: `failure_${kind}` };
  }

  private state(dst: number): PathState {
    let p = this.paths.get(dst);
    if (p?.stage === 'refused' && this.now() >= p.refusedUntil!) p = undefined;
    if (!p) {
      const outside = !this.map.isVpnRoutable(dst);
      if (dst === this.home.homeAgent) p = { dst, stage: 'end', end: this.home.sgw, outside };
      else if (outside || this.procedure === 'three-step') p = { dst, stage: 'plain', outside };
      else p = { dst, stage: 'end', end: this.initialEnd(dst), outside };
      this.paths.set(dst, p);
    }
    return p;
  }

  private hopsFor(p: PathState): Set<Sgw> {
    const key = p.stage === 'end' && p.end ? p.end.name : `dst:${p.dst}`;
    let set = this.laterHops.get(key);
    if (!set) {
      set = new Set();
      this.laterHops.set(key, set);
    }
    return set;
  }

  /**
   * The first End-End peer the map suggests (§4.5): the CH's own SGW when the visited site relays, else a known
   * Border-SGW (§3.3, §3.4).
   */
  private initialEnd(dst: number): Sgw | undefined {
    const chSgw = this.map.protectingSgw(dst);
    if (!chSgw) return undefined;
    if (this.map.protectingSgw(this.careOf)?.vpnRoutable) return chSgw;
    const border = this.map.chain(chSgw).at(-1)!;
    return this.knownBorders.includes(border) ? border : this.knownBorders[0];
  }

  /** Outer destinations of what we send for a path: a quoted one names the path a failure is about. */
  private targets(p: PathState): Set<number> {
    const out = new Set<number>([p.dst]);
    if (p.end) out.add(toU32(p.end.outside));
    for (const hop of [...this.hopsFor(p), ...this.firstHops]) out.add(toU32(hop.outside));
    return out;
  }

  private onPathTo(sgw: Sgw, quotedDst: number): boolean {
    return this.map.sgwByAddress(quotedDst) === sgw || this.map.path(this.careOf, quotedDst).some((c) => c.sgw === sgw);
  }

  private encloses(sgw: Sgw): boolean {
    const at = this.map.protectingSgw(this.careOf);
    return at !== undefined && this.map.isWithin(at, sgw);
  }
}
