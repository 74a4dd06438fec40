// What an inbound SA lets through besides its keys (docs/engine.md §4): a next-hop SA's may-relay flag and an
// End-End SA's traffic selectors, checked once for both data paths so they refuse the same descriptions.
import { parsePrefix, prefixContains, readU32, type Prefix } from '../wire/addr.js';
import { wholeIpipInner } from '../wire/ipip.js';
import { IPV4_HEADER_BYTES } from '../wire/ipv4.js';
import { checkTunnelEnds, type TunnelEnds } from './tunnel-ends.js';
import { MAX_SELECTOR_PREFIXES, type SaDesc, type Selectors } from './types.js';

export interface SelectorTable {
  src: Prefix[];
  dst: Prefix[];
  /** The RFC 2003 tunnel (outer source, outer destination) whose inner datagram the selectors judge. */
  tunnel?: TunnelEnds;
}

function side(value: unknown, field: string): Prefix[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_SELECTOR_PREFIXES) {
    throw new RangeError(`${field} must list 1..${MAX_SELECTOR_PREFIXES} prefixes (use 0.0.0.0/0 for any address)`);
  }
  return value.map((p: unknown) => {
    if (typeof p !== 'string') throw new RangeError(`${field} holds ${String(p)}; use 'a.b.c.d/len' strings`);
    try {
      return parsePrefix(p);
    } catch (err) {
      throw new RangeError(`${field}: ${(err as Error).message}`);
    }
  });
}

function checkSelectors(selectors: Selectors, where: string): SelectorTable {
  if (typeof selectors !== 'object' || selectors === null) {
    throw new RangeError(`${where}: selectors must be { src: ['a.b.c.d/len', …], dst: [...] }`);
  }
  const table: SelectorTable = {
    src: side(selectors.src, `${where}: selectors.src`),
    dst: side(selectors.dst, `${where}: selectors.dst`),
  };
  if (selectors.tunnel !== undefined)
    table.tunnel = checkTunnelEnds(
      selectors.tunnel,
      `${where}: selectors.tunnel`,
      'the RFC 2003 tunnel whose inner datagram the selectors judge: home agent, care-of address',
    );
  return table;
}

export interface InboundRules {
  relay: boolean;
  selectors?: SelectorTable;
  /** A datagram outside the selectors is punted (`selector`, with the opened datagram) instead of dropped. */
  selectorMissPunt: boolean;
  /**
   * selectorMiss `{ outbound }`: the policy table that decides a miss from a source inside the src selectors (what
   * it does not seal or drop is punted as under 'punt', so selectorMissPunt is true too).
   */
  selectorMissTable?: number;
  /** Role nexthop, `plain`: the sources whose plain datagrams policy table `plain.table` classifies. */
  plain?: { src: Prefix[]; table: number };
}

/** The addon's code of SaDesc.selectorMiss (native/sa/sa.h SelectorMiss). */
export const SELECTOR_MISS_CODE = { drop: 0, punt: 1, outbound: 2 } as const;

/**
 * `relay` (nexthop only, default true), `selectors` and `selectorMiss` (end only) of a description. Errors are
 * RangeErrors that start with `where` and name the field and the fix.
 */
export function checkInboundRules(desc: SaDesc, where: string): InboundRules {
  const refuse = (message: string): never => {
    throw new RangeError(`${where}: ${message}`);
  };
  if (desc.relay !== undefined && desc.role !== 'nexthop') refuse("relay applies to role 'nexthop' only; remove it");
  if (desc.relay !== undefined && typeof desc.relay !== 'boolean')
    refuse(`relay must be true or false, got ${String(desc.relay)}`);
  if (desc.selectors !== undefined && desc.role !== 'end') refuse("selectors apply to role 'end' only; remove them");
  if (desc.selectorMiss !== undefined && desc.role !== 'end')
    refuse("selectorMiss applies to role 'end' only; remove it");
  const miss: unknown = desc.selectorMiss;
  let selectorMissTable: number | undefined;
  if (typeof miss === 'object' && miss !== null) {
    const keys = Object.keys(miss);
    const table = (miss as { outbound?: unknown }).outbound;
    if (keys.length !== 1 || keys[0] !== 'outbound')
      refuse(`selectorMiss must be 'drop', 'punt' or { outbound: table }, got { ${keys.join(', ')} }`);
    if (typeof table !== 'number' || !Number.isInteger(table) || table < 0 || table > 0xffffffff)
      refuse(`selectorMiss.outbound must be a policy table id 0..4294967295, got ${String(table)}`);
    if (desc.selectors === undefined)
      refuse('selectorMiss { outbound } needs selectors (their src side is what the peer may send); add them');
    selectorMissTable = table as number;
  } else if (miss !== undefined && miss !== 'drop' && miss !== 'punt') {
    refuse(`selectorMiss must be 'drop', 'punt' or { outbound: table }, got ${JSON.stringify(miss)}`);
  }
  return {
    plain: checkPlain(desc, where, refuse),
    relay: desc.relay ?? true,
    selectors: desc.selectors === undefined ? undefined : checkSelectors(desc.selectors, where),
    selectorMissPunt: miss === 'punt' || selectorMissTable !== undefined,
    selectorMissTable,
  };
}

function checkPlain(desc: SaDesc, where: string, refuse: (message: string) => never): InboundRules['plain'] {
  const plain: unknown = desc.plain;
  if (plain === undefined) return undefined;
  if (desc.role !== 'nexthop') refuse("plain applies to role 'nexthop' only; remove it");
  const keys = typeof plain === 'object' && plain !== null ? Object.keys(plain).sort() : [];
  if (keys.join(',') !== 'outbound,src')
    refuse(`plain must be { src: ['a.b.c.d/len', …], outbound: table }, got ${JSON.stringify(plain)}`);
  const { src, outbound } = plain as { src: unknown; outbound: unknown };
  if (typeof outbound !== 'number' || !Number.isInteger(outbound) || outbound < 0 || outbound > 0xffffffff)
    refuse(`plain.outbound must be a policy table id 0..4294967295, got ${String(outbound)}`);
  return { src: side(src, `${where}: plain.src`), table: outbound };
}

/** Whether `src` lies in one src prefix (always, without selectors). */
export function selectorsAdmitSource(table: SelectorTable | undefined, src: number): boolean {
  return !table || table.src.some((p) => prefixContains(p, src));
}

/** Whether a datagram from `src` to `dst` lies inside both sides (always, without selectors). */
export function selectorsAdmit(table: SelectorTable | undefined, src: number, dst: number): boolean {
  return !table || (table.src.some((p) => prefixContains(p, src)) && table.dst.some((p) => prefixContains(p, dst)));
}

/**
 * RFC 4301 §5.2 for an opened datagram of `length` bytes at `at`: its source and destination lie in the selectors, or
 * it is whole IP-in-IP from the selectors' tunnel source to its destination (RFC 2003 §6.2, wholeIpipInner) whose
 * inner datagram's do. Too short to name its addresses, or not version 4: a miss. No selectors: always.
 */
export function selectorsAdmitDatagram(
  table: SelectorTable | undefined,
  buf: Uint8Array,
  at: number,
  length: number,
): boolean {
  if (!table) return true;
  if (length < IPV4_HEADER_BYTES || buf[at] >> 4 !== 4) return false;
  const [src, dst] = [readU32(buf, at + 12), readU32(buf, at + 16)];
  if (selectorsAdmit(table, src, dst)) return true;
  if (!table.tunnel || src !== table.tunnel.src || dst !== table.tunnel.dst) return false;
  const inner = wholeIpipInner(buf, at, length);
  return inner !== 0 && selectorsAdmit(table, readU32(buf, at + inner + 12), readU32(buf, at + inner + 16));
}

/** The addon's flat form of one side: (network, length) pairs. */
export function flattenPrefixes(prefixes: readonly Prefix[]): Uint32Array {
  return Uint32Array.from(prefixes.flatMap((p) => [p.network, p.length]));
}
