// The SGW as a table compiler (DESIGN §1): decisions of the policy (src/policy/sgw.ts) that hold for a whole
// destination prefix and every source this SGW speaks for become OUTBOUND policies of the engine its I/O loops
// share, so the next packets of the flow never reach JavaScript. What no entry covers is punted and decided
// here as before; an entry only ever repeats a decision the policy made, for exactly the packets it would make
// it for:
//
//   own addresses                 → inbound (INBOUND opens, relays by route, punts what needs a decision)
//   an SGW's protected prefixes   → protect (End-End to it, inside a Next-hop layer when one lies between),
//                                   for sources this SGW itself protects; sources of SGWs nested behind it punt
//   a care-of address of our SMN  → protect (End-End to the SMN), while its HA's binding lives
//   an outside host (§3.5)        → pass (routed as usual IP), learned per address, capped and expiring
//   every other SGW's prefixes    → punt, so a shorter compiled prefix never answers for them
//
// Each outside interface's table, when the site lets usual IP in (plainInbound 'pass', §3.5) and translates nothing:
//
//   own addresses                 → inbound (as above)
//   this SGW's region, TCP only   → pass (what the policy's decidePlain passes from outside; no signalling or SKIP
//                                   layer is TCP, so code 4 for a layer without a Next-hop AH, discovery answers and
//                                   failure messages stay the policy's)
//
// and, when the SGW builds no VPNs (not VPN-routable, §3.4), whatever plainInbound says:
//
//   this SGW's region, SKIP only  → pass (the layers decideTransit lets in as usual IP; the engine passes a SKIP
//                                   datagram only whole and with a header that parses, the policy's own view of it)
//
// A second table, REENCRYPT_TABLE, read by no interface, decides what an SMN's End-End SA opens that lies outside its
// selectors (draft §3.3, "SGW0 decrypts and re-encrypts"; the SA's selectorMiss { outbound }, docs/engine.md §4). The
// engine takes only sources the SA's src selectors bind to the SMN (its home address, the one source the policy's
// decideEnd lets it speak for beyond registrations, which stay punted), so the table holds decisions by destination:
//
//   an SGW's protected prefixes   → protect, as above (the End-End + Next-hop decision the policy makes for any
//                                   source that may send there; learned from inside traffic or from a re-encryption)
//   own addresses, care-of        → punt (the policy delivers to itself; SMN to SMN stays with the policy)
//   addresses, every other SGW's
//   prefixes
//   anything else                 → no policy: punted (the policy drops what cannot go on, §3.4, §3.5)
//
// A third, NEXTHOP_PLAIN_TABLE, read by no interface either, decides the plain datagrams a visiting SMN's Next-hop
// layer alone protects (the Next-hop SA's `plain`, docs/engine.md §4; the policy's decideAuthenticatedPlain, draft
// §3.2 step 2 and §3.5). The engine takes only sources the SA's `plain.src` binds to the SMN (its home address and the
// care-of address it keyed the layer from, the sources the policy lets it speak for under a Next-hop layer) and never
// IP-in-IP, so the table holds decisions by destination:
//
//   an outside host (§3.5)        → pass (strip the layer, forward as usual IP), learned per address from the
//                                   policy's own relay of such a datagram, capped and expiring as the passes above
//   own addresses, care-of        → punt (delivered inside, or protected toward the SMN: the policy's)
//   addresses, every SGW's
//   prefixes
//   anything else                 → no policy: punted
//
// SA ids change as SKIP keys rotate (a new n, Kp used up): refresh() asks the keys again, publishes the new tables
// and only then retires the SAs they replaced, so no packet meets a table naming a removed SA.
import type { Engine, PlainDatagrams, Policy, SelectorMiss, Selectors } from '../../engine/types.js';
import type { OutboundRequest } from '../../keys/keying.js';
import type { SkipName } from '../../keys/names.js';
import type { Clock } from '../../net/types.js';
import type { EndPeer, SgwPlace } from '../../policy/sgw.js';
import { formatPrefix, prefixWithin, toU32, type Sgw } from '../../topology/map.js';
import { parsePrefix, u32ToIp, type Prefix } from '../../wire/addr.js';
import { IpProto } from '../../wire/ipv4.js';
import { IPPROTO_SKIP, NSID_NONE } from '../../wire/skip.js';
import type { Tally } from '../common/counters.js';
import type { NodeKeys } from '../common/keys.js';

/** The engine's policy tables this SGW's interfaces read with (HostDataPath.tableOf). */
export interface SgwTableIds {
  inside: number;
  /** One per outside interface. */
  outside: number[];
}

export const DEFAULT_LEARNED_PASSES = 4096;
export const DEFAULT_LEARNED_PASS_MS = 60_000;
/** Prefixes a selector side or a policy's source list may hold (docs/engine.md §4). */
const MAX_PREFIXES = 32;
/** A selector nothing matches: everything the SA opens is punted to the policy. */
const NOTHING: Selectors = { src: ['0.0.0.0/32'], dst: ['0.0.0.0/32'] };
/**
 * The policy table an SMN's End-End SA sends a selector miss through (selectorMiss { outbound }). No interface reads
 * it: interface tables are 1, 2, … (HostDataPath.tableOf), 0 is the role's own.
 */
export const REENCRYPT_TABLE = 0xffff0303;
/** The policy table a visiting SMN's Next-hop SA sends the plain datagrams it protects through (`plain`). */
export const NEXTHOP_PLAIN_TABLE = 0xffff0304;

interface Protected {
  end: EndPeer;
  nextHop?: Sgw;
  /** Destination prefixes the decision holds for. */
  prefixes: string[];
  /** Installed SA ids; undefined while keying fails (the entry is left out). */
  endSa?: number;
  wrapSa?: number;
}

/** Requests for the outbound SAs of an End-End layer to `end` and a Next-hop layer to `nextHop`. */
export interface SaRequests {
  end(end: EndPeer): OutboundRequest;
  nextHop(peer: Sgw): OutboundRequest;
}

const text = (p: Prefix) => formatPrefix(p);

/** `base` minus every prefix of `holes` inside it, as prefixes (each hole splits its container in halves). */
export function subtractPrefixes(base: readonly Prefix[], holes: readonly Prefix[]): Prefix[] {
  let out = [...base];
  for (const hole of holes) {
    const next: Prefix[] = [];
    for (const p of out) {
      if (prefixWithin(p, hole)) continue;
      if (!prefixWithin(hole, p)) {
        next.push(p);
        continue;
      }
      // Walk from p down to the hole, keeping the sibling half at each step.
      let at = p;
      while (at.length < hole.length) {
        const length = at.length + 1;
        const bit = (1 << (32 - length)) >>> 0;
        const low: Prefix = { network: at.network, length };
        const high: Prefix = { network: (at.network | bit) >>> 0, length };
        const [toward, away] = (hole.network & bit) !== 0 ? [high, low] : [low, high];
        next.push(away);
        at = toward;
      }
    }
    out = next;
  }
  return out;
}

export class SgwTables {
  private readonly self: Sgw;
  /** By end peer (SGW name or care-of address): what is compiled, in the order learned. */
  private readonly protects = new Map<string, Protected>();
  /** Outside hosts (a.b.c.d/32) passed as usual IP → until; insertion order is expiry order. */
  private readonly passes = new Map<string, number>();
  /** Outside hosts (a.b.c.d/32) a visiting SMN's plain datagrams under its Next-hop layer go to as usual IP → until. */
  private readonly plainPasses = new Map<string, number>();
  /** Care-of addresses left to the policy until their HA's next reply is seen (a registration in flight). */
  private readonly suspended = new Set<number>();
  private published = '';
  /** The SGW translates inside addresses (§3.5 NAT): what arrives from outside is the translator's, never compiled. */
  natOutside = false;
  private readonly mine: string[];
  /**
   * Sources inside that an entry never answers for: SGWs nested behind this one (they are not its hosts, §3.2 step 1;
   * their own outside address sends signalling — a discovery request passed here unseen gets its answer refused as
   * unawaited) and, except toward a care-of address, its HAs (a tunnel to a care-of address no binding names is never
   * sent plain nor to another SGW: the policy drops it, issue 10 hole 8).
   */
  private readonly nestedSources: string[];
  private readonly haSources: string[];
  /** The home networks this SGW's HAs serve: its own SMNs' home addresses. */
  private readonly ownHomes: readonly Prefix[];
  /** selectorsFor's answers per peer SGW. */
  private readonly sgwSelectors = new Map<Sgw, Selectors>();
  /** What every End-End SA delivers inside (insideDestinations). */
  private readonly deliveredInside: string[];

  constructor(
    private readonly place: SgwPlace,
    private readonly engine: Engine,
    private readonly keys: NodeKeys,
    private readonly requests: SaRequests,
    private readonly ids: SgwTableIds,
    private readonly clock: Clock,
    private readonly tally: Tally,
    private readonly passLimit = DEFAULT_LEARNED_PASSES,
  ) {
    this.self = place.self;
    const { map } = place;
    const nested = map.sgws.filter((s) => s !== this.self && map.isWithin(s, this.self));
    this.mine = this.self.prefixes.map(text);
    this.nestedSources = nested.flatMap((s) => [...s.prefixes.map(text), `${s.outside}/32`]);
    this.haSources = map.homeAgents
      .filter((ha) => ha.sgw === this.self)
      .map((ha) => `${u32ToIp(toU32(ha.address))}/32`);
    this.ownHomes = map.homeAgents.filter((ha) => ha.sgw === this.self).flatMap((ha) => ha.serves);
    this.deliveredInside = this.insideDestinations();
  }

  /** What an inbound End-End SA from `peer` delivers without asking: its sources, to what this SGW delivers inside. */
  selectorsFor(peer: SkipName): Selectors {
    const { map } = this.place;
    if (peer.nsid !== NSID_NONE)
      return map.homeAgentFor(peer.address) ? this.selectors([{ network: peer.address, length: 32 }]) : NOTHING;
    const sgw = map.sgwByAddress(peer.address);
    if (!sgw) return NOTHING;
    // The map is fixed for the SGW's life: an SGW's selectors are worked out on its first key (a new key's first
    // packet waits on them), bounded by the map's SGWs.
    let found = this.sgwSelectors.get(sgw);
    if (!found) {
      // Not the home addresses of this SGW's own SMNs, though behind the peer: their datagrams come End-End from the
      // SMN itself, and one another SGW negotiated for them is the policy's (end-end conflict, §3.2 step 2).
      found = this.selectors(
        subtractPrefixes(
          this.within(sgw).flatMap((s) => [...s.prefixes]),
          this.ownHomes,
        ),
      );
      this.sgwSelectors.set(sgw, found);
    }
    return found;
  }

  private selectors(src: readonly Prefix[]): Selectors {
    const dst = this.deliveredInside;
    if (src.length === 0 || src.length > MAX_PREFIXES || dst.length === 0 || dst.length > MAX_PREFIXES) return NOTHING;
    return { src: src.map(text), dst };
  }

  /**
   * Delivered inside: what this SGW itself protects (not its nested SGWs' networks: those are re-protected, §4.5) and
   * the networks it sits in (Figure 1); everything else is the policy's.
   */
  private insideDestinations(): string[] {
    const nested = this.within(this.self)
      .filter((s) => s !== this.self)
      .flatMap((s) => [...s.prefixes]);
    const enclosing = this.place.map.chain(this.self.behind).flatMap((s) =>
      subtractPrefixes(
        s.prefixes,
        this.within(this.self).flatMap((n) => [...n.prefixes]),
      ),
    );
    return [...subtractPrefixes(this.self.prefixes, nested), ...enclosing].map(text);
  }

  private within(outer: Sgw): Sgw[] {
    const { map } = this.place;
    return map.sgws.filter((s) => map.isWithin(s, outer));
  }

  /**
   * What an inbound End-End SA from `peer` does with a datagram outside its selectors: an SMN's (whose selectors name
   * its home address) goes through the re-encryption table; an SGW's is punted to the policy.
   */
  selectorMissFor(peer: SkipName): SelectorMiss {
    return peer.nsid !== NSID_NONE && this.place.map.homeAgentFor(peer.address)
      ? { outbound: REENCRYPT_TABLE }
      : 'punt';
  }

  /**
   * What an inbound Next-hop SA from `peer` (keyed from outer source `careOf`) does with the plain datagrams its layer
   * protects: a visiting SMN's (one whose HA the map names, not behind this SGW: for this SGW's own SMNs the policy
   * answers an end-end conflict, §3.2 step 2) go through NEXTHOP_PLAIN_TABLE from its home and care-of addresses, the
   * sources the policy lets it speak for; an SGW's are all the policy's.
   */
  plainFor(peer: SkipName, careOf: string): PlainDatagrams | undefined {
    if (peer.nsid === NSID_NONE) return undefined;
    const ha = this.place.map.homeAgentFor(peer.address);
    if (!ha || ha.sgw === this.self) return undefined;
    const src = [...new Set([`${u32ToIp(peer.address)}/32`, `${careOf}/32`])];
    return { src, outbound: NEXTHOP_PLAIN_TABLE };
  }

  /**
   * The policy stripped a visiting SMN's Next-hop layer and forwarded the plain datagram it protected to `dst` as usual
   * IP (§3.5): a decision by destination alone for every source the SA's `plain.src` admits, as long as `dst` is no
   * protected address and no care-of address of ours (the caller checks both; the table punts care-of addresses).
   */
  learnPlainPass(dst: number): void {
    const prefix = `${u32ToIp(dst)}/32`;
    if (this.plainPasses.has(prefix)) return;
    if (this.plainPasses.size >= this.passLimit) return this.tally.add('table_plain_pass_limit');
    this.plainPasses.set(prefix, this.clock.now() + DEFAULT_LEARNED_PASS_MS);
    this.tally.add('table_plain_pass_learned');
    this.refresh();
  }

  /** The policy protected a plain datagram from inside, from a source this SGW protects, toward `dst`. */
  learnProtect(dst: number, end: EndPeer, nextHop: Sgw | undefined): void {
    const key = end.kind === 'sgw' ? `sgw ${end.sgw.name}` : `smn ${end.careOf}`;
    if (this.protects.has(key)) return;
    if (end.kind === 'smn') {
      if (this.suspended.has(toU32(end.careOf))) return;
    } else if (
      end.sgw.prefixes.length === 0 ||
      !end.sgw.prefixes.some((p) => prefixWithin({ network: dst, length: 32 }, p))
    ) {
      return;
    }
    const prefixes = end.kind === 'sgw' ? end.sgw.prefixes.map(text) : [`${end.careOf}/32`];
    this.protects.set(key, { end, nextHop, prefixes });
    this.passes.delete(`${u32ToIp(dst)}/32`);
    this.tally.add('table_protect_learned');
  }

  /**
   * The policy re-encrypted a datagram an SMN's End-End layer opened toward `end` (§3.3). Toward an SGW the decision
   * holds for its whole prefix as it would for a plain datagram from one of our hosts (the policy asks protectToward
   * for both), so it is learned as one: the re-encryption table seals the SMN's next datagrams there. Not for a
   * destination behind an SGW nested behind this one: from inside that is internal traffic, never protected.
   */
  learnReencrypt(dst: number, end: EndPeer, nextHop: Sgw | undefined): void {
    if (end.kind !== 'sgw') return;
    const { map } = this.place;
    const owner = map.protectingSgw(dst);
    if (owner && map.isWithin(owner, this.self)) return;
    this.learnProtect(dst, end, nextHop);
  }

  /** The policy passed a plain datagram from inside to an outside host as usual IP. */
  learnPass(dst: number): void {
    const prefix = `${u32ToIp(dst)}/32`;
    if (this.passes.has(prefix)) return;
    if (this.passes.size >= this.passLimit) return this.tally.add('table_pass_limit');
    this.passes.set(prefix, this.clock.now() + DEFAULT_LEARNED_PASS_MS);
    this.tally.add('table_pass_learned');
  }

  /**
   * A registration of an SMN at `careOf` passes through: its entry goes until the HA's reply is seen again
   * (the care-of table learns only from replies, which an entry would carry past the policy).
   */
  suspendCareOf(careOf: number): void {
    this.suspended.add(careOf);
    // Published now, before the registration goes on to the HA: the tables of the next flush could be too late for
    // the reply, which the old entry would seal past the policy, leaving the care-of address suspended for good.
    if (this.protects.delete(`smn ${u32ToIp(careOf)}`)) this.refresh();
  }

  /**
   * The HA's reply for `careOf` was seen: the care-of address may be compiled again. Published now: the re-encryption
   * table must punt a new care-of address before an SMN's datagram to it could be sealed toward the SGW around it.
   */
  resumeCareOf(careOf: number): void {
    this.suspended.delete(careOf);
    this.refresh();
  }

  /** Re-resolves every SA, drops what no longer holds, publishes when anything changed. Cheap when nothing did. */
  refresh(): void {
    const retired: number[] = [];
    const now = this.clock.now();
    for (const passes of [this.passes, this.plainPasses]) {
      for (const [prefix, until] of passes) {
        if (until > now) break;
        passes.delete(prefix);
      }
    }
    for (const [key, entry] of this.protects) {
      const { end } = entry;
      if (end.kind === 'smn' && this.place.careOfs?.get(toU32(end.careOf)) !== toU32(end.home)) {
        this.protects.delete(key);
        continue;
      }
      const endSa = this.keys.outbound(this.requests.end(end), retired);
      const wrapSa = entry.nextHop ? this.keys.outbound(this.requests.nextHop(entry.nextHop), retired) : undefined;
      const ok = endSa.ok && (!wrapSa || wrapSa.ok);
      entry.endSa = ok && endSa.ok ? endSa.id : undefined;
      entry.wrapSa = ok && wrapSa?.ok ? wrapSa.id : undefined;
    }
    const policies = this.policies();
    const key = JSON.stringify(policies);
    if (key !== this.published) {
      this.engine.setPolicies(policies);
      this.published = key;
    }
    for (const id of retired) this.keys.retire(id);
  }

  /** Entries now compiled (status). */
  size(): { protected: number; passes: number; plainPasses: number } {
    return { protected: this.protects.size, passes: this.passes.size, plainPasses: this.plainPasses.size };
  }

  private policies(): Policy[] {
    const { map } = this.place;
    const out: Policy[] = [];
    for (const table of [this.ids.inside, ...this.ids.outside]) {
      for (const address of new Set([this.self.inside, this.self.outside]))
        out.push({ table, prefix: `${address}/32`, sa: 0, action: 'inbound' });
    }
    // What passes from outside into the region, by protocol (see the top of this file).
    const passedIn = [
      ...(this.place.plainInbound === 'pass' && !this.natOutside ? [IpProto.TCP] : []),
      ...(this.self.vpnRoutable ? [] : [IPPROTO_SKIP]),
    ];
    const region = map.sgws.filter((s) => map.isWithin(s, this.self)).flatMap((s) => s.prefixes.map(text));
    for (const proto of passedIn)
      for (const table of this.ids.outside)
        for (const prefix of region) out.push({ table, prefix, proto, sa: 0, action: 'pass' });
    const table = this.ids.inside;
    const compiled = new Set<string>();
    const sources = [this.mine, this.nestedSources, this.haSources].every((list) => list.length <= MAX_PREFIXES);
    // Sources listed first are refused (punted) before the SGW's own sources decide.
    const refused = (prefix: string, withHas: boolean) => {
      for (const src of [this.nestedSources, withHas ? this.haSources : []])
        if (src.length) out.push({ table, prefix, src, sa: 0, action: 'punt' });
    };
    for (const entry of this.protects.values()) {
      if (entry.endSa === undefined || !sources) continue;
      for (const prefix of entry.prefixes) {
        compiled.add(prefix);
        refused(prefix, entry.end.kind === 'sgw');
        const wrap = entry.wrapSa === undefined ? [] : [entry.wrapSa];
        out.push({ table, prefix, src: this.mine, sa: entry.endSa, wrap, action: 'protect' });
      }
    }
    for (const sgw of map.sgws) {
      for (const p of sgw.prefixes) {
        const prefix = text(p);
        if (!compiled.has(prefix)) out.push({ table, prefix, sa: 0, action: 'punt' });
      }
    }
    if (sources) {
      for (const prefix of this.passes.keys()) {
        if (compiled.has(prefix)) continue;
        refused(prefix, true);
        out.push({ table, prefix, src: this.mine, sa: 0, action: 'pass' });
      }
    }
    return [...out, ...this.reencryptPolicies(), ...this.plainPolicies()];
  }

  /** Care-of addresses of our SMNs: live bindings, suspended ones, compiled ones. */
  private careOfAddresses(): number[] {
    return [
      ...[...(this.place.careOfs?.entries?.() ?? [])].map(([careOf]) => careOf),
      ...this.suspended,
      ...[...this.protects.values()].flatMap((e) => (e.end.kind === 'smn' ? [toU32(e.end.careOf)] : [])),
    ];
  }

  /** NEXTHOP_PLAIN_TABLE (see the top of this file): only the learned outside hosts pass. */
  private plainPolicies(): Policy[] {
    const table = NEXTHOP_PLAIN_TABLE;
    const out: Policy[] = [];
    const listed = new Set<string>();
    const add = (prefix: string, action: 'punt' | 'pass') => {
      if (listed.has(prefix)) return;
      listed.add(prefix);
      out.push({ table, prefix, sa: 0, action });
    };
    for (const address of [this.self.inside, this.self.outside]) add(`${address}/32`, 'punt');
    for (const careOf of this.careOfAddresses()) add(`${u32ToIp(careOf)}/32`, 'punt');
    const sgwPrefixes = this.place.map.sgws.flatMap((sgw) => sgw.prefixes);
    for (const p of sgwPrefixes) add(text(p), 'punt');
    // A learned host inside an SGW's prefix would be the longer match: never passed (the policy protects or delivers).
    for (const [prefix] of this.plainPasses) {
      const host = parsePrefix(prefix);
      if (!sgwPrefixes.some((p) => prefixWithin(host, p))) add(prefix, 'pass');
    }
    return out;
  }

  /** REENCRYPT_TABLE (see the top of this file): only protect toward SGWs is carried out by the engine. */
  private reencryptPolicies(): Policy[] {
    const table = REENCRYPT_TABLE;
    const out: Policy[] = [];
    const listed = new Set<string>();
    const add = (policy: Policy) => {
      if (listed.has(policy.prefix)) return;
      listed.add(policy.prefix);
      out.push(policy);
    };
    for (const address of [this.self.inside, this.self.outside])
      add({ table, prefix: `${address}/32`, sa: 0, action: 'punt' });
    // Care-of addresses (live bindings, suspended ones, compiled ones): the policy protects to the SMN, not to the SGW
    // whose prefix holds them, and a binding learned between two refreshes is punted (resumeCareOf publishes at once).
    for (const careOf of this.careOfAddresses()) add({ table, prefix: `${u32ToIp(careOf)}/32`, sa: 0, action: 'punt' });
    for (const entry of this.protects.values()) {
      if (entry.end.kind === 'smn' || entry.endSa === undefined) continue;
      const wrap = entry.wrapSa === undefined ? [] : [entry.wrapSa];
      for (const prefix of entry.prefixes) add({ table, prefix, sa: entry.endSa, wrap, action: 'protect' });
    }
    for (const sgw of this.place.map.sgws)
      for (const p of sgw.prefixes) add({ table, prefix: text(p), sa: 0, action: 'punt' });
    return out;
  }
}
