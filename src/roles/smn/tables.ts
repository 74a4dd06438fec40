// The SMN as a table compiler (DESIGN §1, issue 11): what its path table and keys decided for a destination —
// the End-End SA and the Next-hop SAs around it — becomes an OUTBOUND policy in the table of the SMN's
// application port, so the next packets of its applications are sealed by the engine without entering JS.
// Own addresses become `inbound` policies in each interface's table (INBOUND opens what comes to the SMN).
// At home the applications' datagrams leave as they are (the JS path passes them: usual IP, §4.5.1/§4.5.2), and so
// do those to an outside destination no SGW lies on the way to (§3.5 direct): `bypass` in the application table.
// To an outside host whose way crosses the visited site's SGWs (§3.5 Mobile IP without IPsec), once each asked for its
// Next-hop layer: `protect` with sa 0, the Next-hop layers alone.
// What no policy covers is punted: the first packet of a key, the §3.2 plain steps, §4.5.4 local traffic — the JS
// path decides those exactly as before (src/roles/smn.ts).
import type { Engine, Policy } from '../../engine/types.js';
import { u32ToIp } from '../../wire/addr.js';
import { IpProto } from '../../wire/ipv4.js';

/** A policy in the shape of the shared contract (CONTRACT.md): a table, sources, an action. */
export type TablePolicy = Policy & {
  table?: number;
  src?: readonly string[];
  action?: 'protect' | 'bypass' | 'pass' | 'punt' | 'drop' | 'inbound';
};

/** The SAs that protect one destination: End-End, and Next-hop layers innermost first (the order WRAP runs). */
export interface Protection {
  /**
   * The End-End SA; 0: none — the datagram leaves plain (`wraps` empty) or under the Next-hop layers alone (§3.5, an
   * outside host).
   */
  sa: number;
  wraps: readonly number[];
}

export interface SmnTableInput {
  /** The application port's table (OUTBOUND of what the SMN's applications send). */
  appTable: number;
  /** The tables of the SMN's interfaces (OUTBOUND of what arrives there). */
  interfaceTables: readonly number[];
  homeAddress: string;
  careOf: string;
  /** Per destination (u32). */
  protections: ReadonlyMap<number, Protection>;
}

/**
 * The engine tables for an SMN: per destination, `protect` for datagrams from the home or care-of address (what
 * the JS path protects, src/roles/smn.ts classifyOutput: End-End inside its Next-hop layers, or the Next-hop layers
 * alone with sa 0), or `bypass` for one that leaves plain; at home, `bypass`
 * for everything from the home address; per interface table, `bypass` for TCP to the care-of address (to the host's
 * stack) and `inbound` for the own addresses.
 */
export function compileSmnPolicies(input: SmnTableInput): TablePolicy[] {
  const own = [...new Set([input.careOf, input.homeAddress])];
  const out: TablePolicy[] = [];
  const home = input.careOf === input.homeAddress;
  for (const table of new Set(input.interfaceTables)) {
    // TCP to the care-of address (at home: the home address) is usual IP for the host's applications (§4.5.1, §4.5.2,
    // §3.5 direct; the JS path passes every plain datagram to it): handed to the host's stack as it is. No Mobile IP or
    // SKIP signalling is TCP; the rest still goes through INBOUND to the role. Away, TCP to the home address is not
    // taken here: it comes in the HA's tunnel.
    out.push({ prefix: `${input.careOf}/32`, table, proto: IpProto.TCP, action: 'bypass', sa: 0 });
    for (const address of own) out.push({ prefix: `${address}/32`, table, action: 'inbound', sa: 0 });
  }
  const src = own.map((a) => `${a}/32`);
  if (home) out.push({ prefix: '0.0.0.0/0', table: input.appTable, src, action: 'bypass', sa: 0 });
  for (const [dst, p] of [...input.protections].sort((a, b) => a[0] - b[0])) {
    const prefix = `${u32ToIp(dst)}/32`;
    if (p.sa === 0 && p.wraps.length === 0) out.push({ prefix, table: input.appTable, src, action: 'bypass', sa: 0 });
    else
      out.push({
        prefix,
        table: input.appTable,
        src,
        action: 'protect',
        sa: p.sa,
        ...(p.wraps.length ? { wrap: [...p.wraps] } : {}),
      });
  }
  return out;
}

/**
 * The SMN's compiled state: which destinations the engine protects on its own, published whole on every change
 * (setPolicies replaces all tables; the SMN is the only role of its node's engine).
 */
export class SmnTables {
  private readonly protections = new Map<number, Protection>();
  private published = '';

  constructor(
    private readonly engine: Engine,
    /** The rest of the input, read at each publish (addresses change on handover, tables with the host). */
    private readonly context: () => Omit<SmnTableInput, 'protections'> | undefined,
  ) {}

  /** Records what protects `dst`; republishes when it changed. */
  set(dst: number, protection: Protection): void {
    const was = this.protections.get(dst);
    if (was && was.sa === protection.sa && sameList(was.wraps, protection.wraps)) return;
    this.protections.set(dst, { sa: protection.sa, wraps: [...protection.wraps] });
    this.publish();
  }

  /** The engine no longer protects `dst` (the JS path decides its next packet). */
  forget(dst: number): void {
    if (this.protections.delete(dst)) this.publish();
  }

  /** Forgets every destination (handover, new Border-SGWs, stop). */
  clear(): void {
    this.protections.clear();
    this.publish();
  }

  destinations(): number[] {
    return [...this.protections.keys()];
  }

  get(dst: number): Protection | undefined {
    return this.protections.get(dst);
  }

  /** The SAs compiled policies use (their packets leave without JS seeing them). */
  saIds(): Set<number> {
    const ids = new Set<number>();
    for (const p of this.protections.values()) for (const id of [p.sa, ...p.wraps]) if (id !== 0) ids.add(id);
    return ids;
  }

  /** What is in the engine now (for status and tests). */
  policies(): TablePolicy[] {
    const ctx = this.context();
    return ctx ? compileSmnPolicies({ ...ctx, protections: this.protections }) : [];
  }

  /** Puts the tables in the engine, unless they are what it already holds. */
  publish(): void {
    // No data path (a MemoryNetwork host): the engine's tables stay untouched, every packet takes the hooks.
    if (!this.context()) {
      if (this.published !== '') this.engine.setPolicies([]);
      this.published = '';
      return;
    }
    const policies = this.policies();
    const key = JSON.stringify(policies);
    if (key === this.published) return;
    this.engine.setPolicies(policies);
    this.published = key;
  }
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
