// The engine contract as types: docs/engine.md is the prose; native/engine/abi.h defines the same numbers for the
// addon, and test/engine/abi.test.ts fails on any difference between these tables and the addon's binding.abi.

export const Op = {
  ENCAP: 1,
  WRAP: 2,
  INBOUND: 3,
  IPIP_ENCAP: 4,
  IPIP_DECAP: 5,
  OUTBOUND: 6,
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];

export const Verdict = {
  NONE: 0,
  FORWARD: 1,
  DELIVER: 2,
  PUNT: 3,
  DROP: 4,
} as const;
export type VerdictCode = (typeof Verdict)[keyof typeof Verdict];

/** Drop and punt reasons; the value is the index into the counters array. */
export const Reason = {
  none: 0,
  bad_descriptor: 1,
  no_room: 2,
  truncated: 3,
  bad_ip_version: 4,
  bad_ihl: 5,
  bad_total_length: 6,
  bad_ip_checksum: 7,
  fragment: 8,
  ttl_expired: 9,
  bad_skip: 10,
  unknown_nsid: 11,
  unknown_alg: 12,
  bad_ah: 13,
  bad_esp: 14,
  bad_spi: 15,
  unknown_key: 16,
  auth: 17,
  replay: 18,
  seq_exhausted: 19,
  no_sa: 20,
  no_route: 21,
  bad_next_header: 22,
  bad_dst_mkid: 23,
  too_many_layers: 24,
  not_ipsec: 25,
  dummy: 26,
  sa_mismatch: 27,
  loop: 28,
  no_policy: 29,
  nexthop_plain: 30,
  relay_denied: 31,
  selector: 32,
  policy_punt: 33,
  policy_drop: 34,
  ttl_exceeded: 35,
  deliver_local: 36,
  rekey: 37,
  /** Not a failure: on a FORWARD, the SA named reached its softPackets sealing this packet (docs/engine.md §4). */
  rekey_due: 38,
  untrusted_tunnel: 39,
} as const;
export type ReasonName = keyof typeof Reason;
export type ReasonCode = (typeof Reason)[ReasonName];

export const reasonName: readonly ReasonName[] = (() => {
  const names: ReasonName[] = [];
  for (const [name, code] of Object.entries(Reason)) names[code] = name as ReasonName;
  return names;
})();

/** Counter array layout: [reason] for drops and punts, [VERDICT_COUNTER_BASE + verdict] per verdict. */
export const COUNTER_SLOTS = 64;
export const VERDICT_COUNTER_BASE = 48;

/** Descriptor words per packet in a batch. */
export const DESC_WORDS = 8;
export const Desc = {
  op: 0,
  arg0: 1,
  arg1: 2,
  offset: 3,
  length: 4,
  verdict: 5,
  sa: 6,
  nexthop: 7,
} as const;

// The algorithm vocabulary lives with the wire formats that carry it, the SA descriptor with the keying that
// fills it (both below the engine in the layers, docs/architecture.md); the engine's contract includes them.
export { KEY_BYTES, MAX_LAYERS, SkipAlg, type Coverage, type EspSuite, type MacAlg } from '../wire/algorithms.js';
export type { AhDesc, EspDesc, PlainDatagrams, SaDesc, SelectorMiss, Selectors } from '../keys/sa.js';
import type { SaDesc } from '../keys/sa.js';

export const MAX_SELECTOR_PREFIXES = 32;

export interface Route {
  /** 'a.b.c.d/len' */
  prefix: string;
  /** Out SA of role nexthop to relay through, or 0 to forward the datagram as it is. */
  sa: number;
}

/** What OUTBOUND does with a datagram a policy matches (docs/engine.md §4.2). */
export type PolicyAction = 'protect' | 'bypass' | 'pass' | 'punt' | 'drop' | 'inbound' | 'tunnel' | 'detunnel';

/**
 * An outbound policy (docs/engine.md §4.2): what OUTBOUND, run on table `table`, does with a datagram whose
 * destination is in `prefix` and whose source is in one of `src`.
 */
export interface Policy {
  /** Destination 'a.b.c.d/len'; the longest matching prefix is tried first. */
  prefix: string;
  /** Table id (u32, default 0): OUTBOUND's arg0 selects the table. */
  table?: number;
  /** 1..MAX_POLICY_SRC_PREFIXES source prefixes; absent = any source. Same destination prefix: first in order wins. */
  src?: readonly string[];
  /** Default: sa > 0 → 'protect', sa 0 → 'bypass'. */
  action?: PolicyAction;
  /**
   * Out SA of role end to ENCAP with (protect only; 0 for every other action). A protect with sa 0 and at least one
   * `wrap` puts the datagram under the Next-hop layers alone (no End-End layer).
   */
  sa: number;
  /** Out SAs of role nexthop to WRAP with after ENCAP, innermost first (protect only, at most MAX_LAYERS - 1). */
  wrap?: number | readonly number[];
  /**
   * Action 'tunnel' only (and required there): the RFC 2003 tunnel's outer source (the home agent) and destination
   * (its exit, the care-of address, which is also the next hop), dotted IPv4.
   */
  tunnel?: { src: string; dst: string };
  /**
   * The IPv4 protocol number (0..255) the datagram must carry for this policy to match; absent = any protocol. A
   * datagram of another protocol falls through to the next policy of the prefix, then to shorter prefixes. Action
   * 'detunnel' requires 4 (IP-in-IP).
   */
  proto?: number;
}

export const MAX_POLICY_SRC_PREFIXES = 32;

export interface SaStats {
  packets: bigint;
  bytes: bigint;
  /** Outbound: last sequence number used (per header). Inbound: highest authenticated. */
  ahSeq: number;
  espSeq: number;
}

export interface BatchLike {
  readonly buffer: Uint8Array;
  readonly desc: Uint32Array;
  readonly slotSize: number;
  readonly capacity: number;
  count: number;
}

export type EngineImpl = 'native' | 'ts';

/** What both data paths offer: docs/engine.md. */
/**
 * Successor keys (docs/engine.md §4.3): a known peer's next SKIP packet keys, which the engine keys itself. A new key
 * whose tuple is unknown, from a peer listed here (SKIP source NSID 0, found by outer source), with a counter n whose
 * Kijn is given, matching one of the peer's template SAs (inbound SKIP, same layer, outer addresses, algorithms and
 * destination name), whose tuple the engine never held and whose digest is not blocked, gets the template's SA with
 * the new header, the keys unwrapped from it and the next id of `ids`; the packet then goes on under it. Anything else
 * is punted unknown_key as before.
 */
export interface SuccessorConfig {
  /** Unix seconds: from then nothing is keyed until the next setSuccessors (the counter window moves). */
  validUntil: number;
  /** The lowest counter n in the window: key tuples held with a lower one are forgotten. */
  windowStart: number;
  /** SA ids the engine may give, each once, in order (none left: punt). */
  ids: readonly number[];
  /** Tuples not to key: digest52 (src/keys/digest52.ts) of the outer source, dotted, ‖ the SKIP header. */
  blocked?: readonly number[];
  peers: readonly SuccessorPeer[];
}

export interface SuccessorPeer {
  /** The outer source address of its packets. */
  address: string;
  /** Inbound SKIP SAs of this peer a new key may inherit from. */
  templates: readonly number[];
  /** Kijn (32 bytes) for each counter n in the window. */
  kijns: readonly { n: number; kijn: Uint8Array }[];
}

/** An SA the engine keyed (takeSuccessors): its id, the SA it inherited from, its layer and outer addresses, its SKIP
 * header (the key tuple). */
export interface KeyedSuccessor {
  id: number;
  template: number;
  role: 'end' | 'nexthop';
  src: string;
  dst: string;
  skipHeader: Uint8Array;
}

export interface Engine {
  readonly impl: EngineImpl;
  installSa(sa: SaDesc): void;
  removeSa(id: number): void;
  setRoutes(routes: readonly Route[]): void;
  /** Replaces every outbound policy table OUTBOUND classifies by (all tables at once). */
  setPolicies(policies: readonly Policy[]): void;
  setLocalAddresses(addresses: readonly string[]): void;
  /** Runs every packet of the batch synchronously, in one call. */
  process(batch: BatchLike): void;
  /** Same, off the JS thread; resolves when the batch is done. Do not touch the batch meanwhile. */
  processAsync(batch: BatchLike): Promise<void>;
  /** Live per-reason and per-verdict counters (COUNTER_SLOTS entries). */
  counters(): BigUint64Array;
  saStats(id: number): SaStats | undefined;
  /** Replaces the successor configuration (the previous Kijn are zeroed). */
  setSuccessors(config: SuccessorConfig): void;
  /** The SAs keyed as successors since the last call, oldest first. */
  takeSuccessors(): KeyedSuccessor[];
  /** Frees every SA (keys zeroed); the engine is unusable afterwards. */
  close(): void;
}
