// A security association as keying (SKIP, manual SPI config) fills it in and the engine installs it
// (docs/engine.md §4); the engine re-exports it as part of its contract (src/engine/types.ts).
import type { Coverage, EspSuite, MacAlg } from '../wire/algorithms.js';

export interface AhDesc {
  alg: MacAlg;
  key: Uint8Array;
  spi: number;
  /** Last sequence number sent (out SAs); the next packet carries seq + 1. */
  seq?: number;
  /** Next-hop SAs only. */
  coverage?: Coverage;
}

export interface EspDesc {
  suite: EspSuite;
  key: Uint8Array;
  spi: number;
  seq?: number;
}

export interface SaDesc {
  id: number;
  direction: 'out' | 'in';
  role: 'end' | 'nexthop';
  mode: 'skip' | 'spi';
  src: string;
  dst: string;
  /** SKIP mode: the SKIP header bytes (emitted by out SAs, matched by in SAs). */
  skipHeader?: Uint8Array;
  ah?: AhDesc;
  esp?: EspDesc;
  replayWindow?: number;
  /** In SAs: sequence numbers up to it count as already seen (a restarted node's high-water mark); default 0. */
  replayFloor?: number;
  ttl?: number;
  /**
   * Out SAs: the most packets ENCAP, WRAP and OUTBOUND `protect` seal with this SA (1..2^32-1; absent = no limit).
   * Once `saStats(id).packets` reaches it, each further packet is PUNT `rekey`, unchanged, naming this SA: the
   * control plane installs the next SA (SKIP: a new Kp) and re-injects it. A relay's new layer ignores it.
   */
  maxPackets?: number;
  /**
   * Out SAs: the packet that brings `saStats(id).packets` to this count (1..maxPackets) is FORWARDed with reason
   * `rekey_due` naming this SA, once: the control plane installs the next SA while this one keeps sealing, so the
   * hard limit (`maxPackets`) is never met on a busy path. A relay's new layer counts and reports it too.
   */
  softPackets?: number;
  /**
   * In SAs of role nexthop: whether a verified datagram not addressed to this node may be relayed by the routes
   * (default true); false punts it as `relay_denied`.
   */
  relay?: boolean;
  /** In SAs of role end: prefixes the opened datagram's source and destination must lie in (else `selectorMiss`). */
  selectors?: Selectors;
  /**
   * In SAs of role end: what a datagram outside `selectors` gets: 'drop' (default, DROP `selector`), 'punt'
   * (PUNT `selector`, packet = the opened datagram, SA = this SA, for the control plane to decide), or
   * `{ outbound: table }` (needs `selectors`): one from a source inside `selectors.src` is classified by that
   * outbound policy table, whose `protect` seals and forwards it and `drop` drops it; anything else is punted as
   * under 'punt' (docs/engine.md §4, §5).
   */
  selectorMiss?: SelectorMiss;
  /**
   * In SAs of role nexthop: what a plain datagram the verified layer protected (one that is not SKIP/AH/ESP, else
   * punted `nexthop_plain`) gets when its source lies in `src` and it is not IP-in-IP: outbound policy table
   * `outbound` classifies it, `pass` forwards it as a router does (TTL − 1; TTL ≤ 1 is punted), `drop` drops it,
   * anything else is punted `nexthop_plain` as without it (docs/engine.md §4, §5).
   */
  plain?: PlainDatagrams;
}

/** SaDesc.plain: the sources a Next-hop peer speaks for, and the policy table their plain datagrams go through. */
export interface PlainDatagrams {
  src: readonly string[];
  outbound: number;
}

/** What an inbound End-End SA does with an opened datagram outside its selectors (SaDesc.selectorMiss). */
export type SelectorMiss = 'drop' | 'punt' | { outbound: number };

/**
 * Traffic selectors (RFC 4301 §5.2): 'a.b.c.d/len' prefixes, 1..MAX_SELECTOR_PREFIXES (engine/types.ts) per side;
 * any match admits.
 */
export interface Selectors {
  src: readonly string[];
  dst: readonly string[];
  /**
   * An RFC 2003 tunnel whose contents the selectors judge (an SMN's home agent → its care-of address): an opened
   * datagram that is whole IP-in-IP from `src` to `dst` passes when the datagram inside lies in the selectors
   * (docs/engine.md §4). It is delivered whole, as IP-in-IP.
   */
  tunnel?: { src: string; dst: string };
}
