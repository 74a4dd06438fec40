// Outbound policy tables (docs/engine.md §4.2), checked once for both data paths so they refuse the same tables,
// and the lookup structure both follow: per table, one map per destination prefix length (longest first), each
// network naming its policies in the order given; the first whose source prefixes hold the source decides.
import { parsePrefix, prefixContains, prefixMask, type Prefix } from '../wire/addr.js';
import { IpProto } from '../wire/ipv4.js';
import { checkTunnelEnds } from './tunnel-ends.js';
import { MAX_LAYERS, MAX_POLICY_SRC_PREFIXES, type Policy, type PolicyAction } from './types.js';

/** A checked policy: prefixes parsed, action resolved, `wrap` as a list; `src` empty = any source. */
export interface PolicyEntry {
  table: number;
  network: number;
  length: number;
  action: PolicyAction;
  sa: number;
  wrap: number[];
  src: Prefix[];
  /** Action 'tunnel': the outer source and destination (u32); undefined for every other action. */
  tunnel?: { src: number; dst: number };
  /** The IPv4 protocol the datagram must carry; undefined: any. */
  proto?: number;
}

export const MAX_POLICY_WRAPS = MAX_LAYERS - 1;

/** The addon's action codes (native/engine/abi.h PolicyAction; test/engine/abi.test.ts compares). */
export const PolicyActionCode: Record<PolicyAction, number> = {
  protect: 1,
  bypass: 2,
  pass: 3,
  punt: 4,
  drop: 5,
  inbound: 6,
  tunnel: 7,
  detunnel: 8,
};
const ACTIONS = Object.keys(PolicyActionCode) as PolicyAction[];

function u32(value: unknown, where: string, what: string, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > 0xffffffff) {
    throw new RangeError(`${where} must be ${what} (integer ${min}..4294967295), got ${String(value)}`);
  }
  return value;
}

function srcPrefixes(value: unknown, where: string): Prefix[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_POLICY_SRC_PREFIXES) {
    // JSON, not String(): an object's default string is '[object Object]'.
    const got = Array.isArray(value) ? `${value.length} prefixes` : JSON.stringify(value);
    throw new RangeError(
      `${where}: src must list 1..${MAX_POLICY_SRC_PREFIXES} source prefixes (omit it for any source), got ${got}`,
    );
  }
  return value.map((text: unknown, j: number) => {
    if (typeof text !== 'string')
      throw new RangeError(`${where}: src[${j}] must be an 'a.b.c.d/len' string, got ${String(text)}`);
    try {
      return parsePrefix(text);
    } catch (err) {
      throw new RangeError(`${where}: src[${j}]: ${(err as Error).message}`);
    }
  });
}

/**
 * Validates a set of policy tables: each error names the policy (index, prefix) and the field. Refused: a bad
 * prefix or src prefix, more than 32 src prefixes, an unknown action, sa or wrap on an action other than protect,
 * a missing or malformed tunnel on action tunnel (or one on any other action), detunnel without proto 4, more than
 * 7 wraps, and a policy repeating the (table, prefix, src set) of an earlier one.
 */
export function checkPolicies(policies: readonly Policy[]): PolicyEntry[] {
  if (!Array.isArray(policies))
    throw new TypeError('setPolicies expects an array of { prefix, table?, src?, action?, sa, wrap?, tunnel? }');
  const seen = new Map<string, number>();
  return policies.map((p, i) => {
    if (typeof p !== 'object' || p === null || typeof p.prefix !== 'string') {
      throw new TypeError(`policy ${i} must be { prefix: 'a.b.c.d/len', table?, src?, action?, sa, wrap? }`);
    }
    const where = `policy ${i} (${p.prefix}${p.table ? ` table ${String(p.table)}` : ''})`;
    let dst: Prefix;
    try {
      dst = parsePrefix(p.prefix);
    } catch (err) {
      throw new RangeError(`${where}: prefix: ${(err as Error).message}`);
    }
    const table = p.table === undefined ? 0 : u32(p.table, `${where}: table`, 'a table id', 0);
    if (p.action !== undefined && !ACTIONS.includes(p.action)) {
      throw new RangeError(`${where}: action must be one of ${ACTIONS.join(', ')}; got ${String(p.action)}`);
    }
    let action: PolicyAction;
    let sa: number;
    if (p.action === undefined) {
      sa = u32(p.sa, `${where}: sa`, 'an SA id (0 = bypass)', 0);
      action = sa === 0 ? 'bypass' : 'protect';
    } else if (p.action === 'protect') {
      // 0: no End-End layer, the Next-hop layers of `wrap` alone (checked below: at least one).
      sa = u32(p.sa, `${where}: sa`, "an out SA id of role 'end' for action 'protect' (0: wrap alone)", 0);
      action = 'protect';
    } else {
      if (p.sa !== undefined && p.sa !== 0)
        throw new RangeError(`${where}: sa applies to action 'protect' only (this policy is '${p.action}'); use sa 0`);
      sa = 0;
      action = p.action;
    }
    const wrapList = p.wrap === undefined ? [] : Array.isArray(p.wrap) ? (p.wrap as readonly unknown[]) : [p.wrap];
    if (action !== 'protect' && wrapList.length > 0) {
      throw new RangeError(
        `${where}: wrap applies to action 'protect' only ` +
          `(this policy is '${action}'${p.action === undefined ? ', sa 0' : ''}); remove wrap`,
      );
    }
    const wrap = wrapList.map((w: unknown, j: number) => u32(w, `${where}: wrap[${j}]`, 'an SA id', 1));
    if (action === 'protect' && sa === 0 && wrap.length === 0)
      throw new RangeError(
        `${where}: sa must be an out SA id of role 'end' for action 'protect', or 0 with wrap (Next-hop layers ` +
          'alone); got sa 0 and no wrap',
      );
    if (action !== 'tunnel' && p.tunnel !== undefined)
      throw new RangeError(`${where}: tunnel applies to action 'tunnel' only (this policy is '${action}'); remove it`);
    const tunnel =
      action === 'tunnel'
        ? checkTunnelEnds(p.tunnel, `${where}: tunnel`, "for action 'tunnel': the tunnel's outer source and its exit")
        : undefined;
    if (wrap.length > MAX_POLICY_WRAPS)
      throw new RangeError(
        `${where}: wrap: at most ${MAX_POLICY_WRAPS} wrap SAs (INBOUND peels ${MAX_LAYERS} layers), got ${wrap.length}`,
      );
    const src = srcPrefixes(p.src, where);
    const proto = p.proto === undefined ? undefined : u32(p.proto, `${where}: proto`, 'an IPv4 protocol number', 0);
    if (proto !== undefined && proto > 255)
      throw new RangeError(`${where}: proto must be an IPv4 protocol number (integer 0..255), got ${proto}`);
    // A reverse tunnel's end is IP-in-IP only: what else reaches the home agent's address is the control plane's.
    if (action === 'detunnel' && proto !== IpProto.IPIP)
      throw new RangeError(`${where}: action 'detunnel' needs proto 4 (IP-in-IP), got ${proto ?? 'any protocol'}`);
    const srcSet =
      src.length === 0 || src.some((s) => s.length === 0)
        ? ['0/0']
        : [...new Set(src.map((s) => `${s.network}/${s.length}`))].sort();
    const key = `${table}|${dst.network}/${dst.length}|${srcSet.join(',')}|${proto ?? 'any'}`;
    const earlier = seen.get(key);
    if (earlier !== undefined)
      throw new RangeError(`${where} repeats the table, prefix and src of policy ${earlier}; keep one`);
    seen.set(key, i);
    return {
      table,
      network: dst.network,
      length: dst.length,
      action,
      sa,
      wrap,
      src,
      ...(tunnel ? { tunnel } : {}),
      ...(proto !== undefined ? { proto } : {}),
    };
  });
}

/**
 * The addon's flat form: per policy (table, network, length, action code, sa, wrap count, src count, wrap ids…,
 * src (network, length) pairs…, and for action tunnel its outer source and destination); src count 0 = any source.
 */
export function flattenPolicies(entries: readonly PolicyEntry[]): Uint32Array {
  const words: number[] = [];
  for (const e of entries) {
    const proto = e.proto === undefined ? 0 : e.proto + 1;
    words.push(e.table, e.network, e.length, PolicyActionCode[e.action], e.sa, e.wrap.length, e.src.length, proto);
    words.push(...e.wrap);
    for (const s of e.src) words.push(s.network, s.length);
    if (e.tunnel) words.push(e.tunnel.src, e.tunnel.dst);
  }
  return Uint32Array.from(words);
}

interface PolicyLevel {
  length: number;
  mask: number;
  /** network → its policies with this prefix, in the order given. */
  byNetwork: Map<number, PolicyEntry[]>;
}

/** The policy tables indexed for lookup: O(prefix lengths in use) map probes per datagram, never a scan. */
export class PolicyIndex {
  private readonly tables = new Map<number, PolicyLevel[]>();

  constructor(entries: readonly PolicyEntry[]) {
    const byTable = new Map<number, Map<number, PolicyLevel>>();
    for (const e of entries) {
      let levels = byTable.get(e.table);
      if (!levels) byTable.set(e.table, (levels = new Map()));
      let level = levels.get(e.length);
      if (!level)
        levels.set(e.length, (level = { length: e.length, mask: prefixMask(e.length), byNetwork: new Map() }));
      const list = level.byNetwork.get(e.network);
      if (list) list.push(e);
      else level.byNetwork.set(e.network, [e]);
    }
    for (const [table, levels] of byTable)
      this.tables.set(
        table,
        [...levels.values()].sort((a, b) => b.length - a.length),
      );
  }

  /**
   * Longest destination prefix first; among equal prefixes the first whose src holds `src` and whose proto (if any) is
   * `proto`; undefined: none.
   */
  find(table: number, src: number, dst: number, proto: number): PolicyEntry | undefined {
    const levels = this.tables.get(table);
    if (!levels) return undefined;
    for (const level of levels) {
      const list = level.byNetwork.get((dst & level.mask) >>> 0);
      if (!list) continue;
      for (const p of list) {
        if (p.proto !== undefined && p.proto !== proto) continue;
        if (p.src.length === 0 || p.src.some((s) => prefixContains(s, src))) return p;
      }
    }
    return undefined;
  }
}
