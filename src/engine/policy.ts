// Outbound policies (docs/engine.md §4.2), checked once for both data paths so they refuse the same tables.
import { parsePrefix } from '../wire/addr.js';
import { MAX_LAYERS, type Policy } from './types.js';

/** A checked policy: the prefix parsed, `wrap` as a list. */
export interface PolicyEntry {
  network: number;
  length: number;
  sa: number;
  wrap: number[];
}

export const MAX_POLICY_WRAPS = MAX_LAYERS - 1;

function saId(value: unknown, where: string, allowZero: boolean): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < (allowZero ? 0 : 1) || value > 0xffffffff) {
    throw new RangeError(`${where} must be an SA id (integer ${allowZero ? '0' : '1'}..4294967295${allowZero ? ', 0 = bypass' : ''}), got ${String(value)}`);
  }
  return value;
}

/** Validates a policy table: each field named in the error; a prefix may appear once. */
export function checkPolicies(policies: readonly Policy[]): PolicyEntry[] {
  if (!Array.isArray(policies)) throw new TypeError('setPolicies expects an array of { prefix, sa, wrap? }');
  const seen = new Map<string, number>();
  return policies.map((p, i) => {
    const where = `policy ${i} (${String(p?.prefix)})`;
    if (typeof p !== 'object' || p === null || typeof p.prefix !== 'string') throw new TypeError(`policy ${i} must be { prefix: 'a.b.c.d/len', sa, wrap? }`);
    const { network, length } = parsePrefix(p.prefix);
    const key = `${network}/${length}`;
    if (seen.has(key)) throw new RangeError(`${where} repeats the prefix of policy ${seen.get(key)}; keep one`);
    seen.set(key, i);
    const sa = saId(p.sa, `${where}: sa`, true);
    const wrap = p.wrap === undefined ? [] : (Array.isArray(p.wrap) ? (p.wrap as readonly unknown[]) : [p.wrap]).map((w: unknown, j: number) => saId(w, `${where}: wrap[${j}]`, false));
    if (sa === 0 && wrap.length > 0) throw new RangeError(`${where}: a bypass policy (sa 0) takes no wrap; remove wrap or name an end SA`);
    if (wrap.length > MAX_POLICY_WRAPS) throw new RangeError(`${where}: at most ${MAX_POLICY_WRAPS} wrap SAs (INBOUND peels ${MAX_LAYERS} layers), got ${wrap.length}`);
    return { network, length, sa, wrap };
  });
}

/** The addon's flat form: per policy (network, length, sa, wrap count, wrap ids…). */
export function flattenPolicies(entries: readonly PolicyEntry[]): Uint32Array {
  const words: number[] = [];
  for (const e of entries) words.push(e.network, e.length, e.sa, e.wrap.length, ...e.wrap);
  return Uint32Array.from(words);
}
