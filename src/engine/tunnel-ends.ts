// The two ends of an RFC 2003 tunnel as an engine table names them (docs/engine.md §4 selectors.tunnel, §4.2 action
// 'tunnel'): { src, dst }, each a dotted IPv4 address other than 0.0.0.0. Checked once for both data paths.
import { ipToU32, isIpv4 } from '../wire/addr.js';

export interface TunnelEnds {
  src: number;
  dst: number;
}

/** `field` names the value in errors (e.g. "policy 3 (10.0.0.100/32): tunnel"); `role` says what the ends are. */
export function checkTunnelEnds(value: unknown, field: string, role: string): TunnelEnds {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new RangeError(
      `${field} must be { src: 'a.b.c.d', dst: 'a.b.c.d' } (${role}), got ${JSON.stringify(value) ?? 'undefined'}`,
    );
  const ends = value as Record<string, unknown>;
  const address = (end: 'src' | 'dst'): number => {
    const text = ends[end];
    if (typeof text !== 'string' || !isIpv4(text))
      throw new RangeError(`${field}.${end} must be a dotted IPv4 address, got ${JSON.stringify(text)}`);
    const u = ipToU32(text);
    if (u === 0) throw new RangeError(`${field}.${end} must not be 0.0.0.0`);
    return u;
  };
  return { src: address('src'), dst: address('dst') };
}
