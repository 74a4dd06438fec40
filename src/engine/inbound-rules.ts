// What an inbound SA lets through besides its keys (docs/engine.md §4): a next-hop SA's may-relay flag and an
// End-End SA's traffic selectors, checked once for both data paths so they refuse the same descriptions.
import { parsePrefix, prefixContains, type Prefix } from '../wire/addr.js';
import { MAX_SELECTOR_PREFIXES, type SaDesc, type Selectors } from './types.js';

export interface SelectorTable {
  src: Prefix[];
  dst: Prefix[];
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
  return { src: side(selectors.src, `${where}: selectors.src`), dst: side(selectors.dst, `${where}: selectors.dst`) };
}

export interface InboundRules {
  relay: boolean;
  selectors?: SelectorTable;
  /** A datagram outside the selectors is punted (`selector`, with the opened datagram) instead of dropped. */
  selectorMissPunt: boolean;
}

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
  if (desc.selectorMiss !== undefined && desc.selectorMiss !== 'drop' && desc.selectorMiss !== 'punt') {
    refuse(`selectorMiss must be 'drop' or 'punt', got ${String(desc.selectorMiss)}`);
  }
  return {
    relay: desc.relay ?? true,
    selectors: desc.selectors === undefined ? undefined : checkSelectors(desc.selectors, where),
    selectorMissPunt: desc.selectorMiss === 'punt',
  };
}

/** Whether a datagram from `src` to `dst` lies inside both sides (always, without selectors). */
export function selectorsAdmit(table: SelectorTable | undefined, src: number, dst: number): boolean {
  return !table || (table.src.some((p) => prefixContains(p, src)) && table.dst.some((p) => prefixContains(p, dst)));
}

/** The addon's flat form of one side: (network, length) pairs. */
export function flattenPrefixes(prefixes: readonly Prefix[]): Uint32Array {
  return Uint32Array.from(prefixes.flatMap((p) => [p.network, p.length]));
}
