// The home agent as a table compiler (DESIGN §1, issue 11): each binding — a registered home address and its
// care-of address — becomes one OUTBOUND `tunnel` policy for that home address (/32) in the table of each of the HA
// host's interfaces, so its I/O loops tunnel what they intercept for an away mobile node to the care-of address
// natively (RFC 2003: TTL − 1, IP-in-IP from the HA; nothing from the care-of address goes back into the tunnel,
// docs/engine.md §4.2). While there is a binding, one `detunnel` policy for IP-in-IP to the HA's own address opens
// the reverse tunnels (RFC 3024) the same way, checked against those same tunnel policies: only from a binding's
// care-of address with its home address inside. Nothing else is compiled: registrations and every other datagram
// find no policy and are punted to the JS path (src/roles/ha/home-agent.ts), as before.
import type { Engine, Policy } from '../../engine/types.js';
import { u32ToIp } from '../../wire/addr.js';
import { IpProto } from '../../wire/ipv4.js';

export interface HaTableInput {
  /** The tables of the HA host's interfaces (OUTBOUND of what arrives there). */
  interfaceTables: readonly number[];
  /** The HA's address: the tunnels' outer source. */
  address: number;
  /** Home address → care-of address (u32), for every mobile node with a binding. */
  bindings: ReadonlyMap<number, number>;
}

/**
 * Per interface table: one `tunnel` policy per binding, in home address order (a stable table to compare), then,
 * when there is one, the `detunnel` policy of the HA's address.
 */
export function compileHaPolicies(input: HaTableInput): Policy[] {
  const out: Policy[] = [];
  const src = u32ToIp(input.address);
  // The HA's own address is never a tunnel's entry (its registrations are JS's; IP-in-IP to it is detunnel's).
  const sorted = [...input.bindings].filter(([home]) => home !== input.address).sort((a, b) => a[0] - b[0]);
  if (sorted.length === 0) return out;
  for (const table of [...new Set(input.interfaceTables)].sort((a, b) => a - b)) {
    for (const [home, careOf] of sorted) {
      out.push({
        prefix: `${u32ToIp(home)}/32`,
        table,
        action: 'tunnel',
        sa: 0,
        tunnel: { src, dst: u32ToIp(careOf) },
      });
    }
    out.push({ prefix: `${src}/32`, table, proto: IpProto.IPIP, action: 'detunnel', sa: 0 });
  }
  return out;
}

/**
 * The HA's compiled state, published whole on every change (setPolicies replaces all tables; the HA is the only
 * role of its node's engine). Without a data path (a MemoryNetwork host, or a host whose loops run an engine of
 * their own) the engine's tables stay empty and every packet takes the JS hooks.
 */
export class HaTables {
  private published = '';

  constructor(
    private readonly engine: Engine,
    /** The input, read at each publish (bindings change on registration, expiry and deregistration). */
    private readonly context: () => HaTableInput | undefined,
  ) {}

  /** What is in the engine now (for status and tests). */
  policies(): Policy[] {
    const ctx = this.context();
    return ctx ? compileHaPolicies(ctx) : [];
  }

  /** Puts the tables in the engine, unless they are what it already holds. */
  publish(): void {
    const policies = this.policies();
    const key = JSON.stringify(policies);
    if (key === this.published) return;
    this.engine.setPolicies(policies);
    this.published = key;
  }

  /** Empties the tables (the HA stops): nothing is tunnelled without the JS path any more. */
  clear(): void {
    if (this.published !== '' && this.published !== '[]') this.engine.setPolicies([]);
    this.published = '';
  }
}
