// The engine's next-hop table for an SGW (docs/engine.md §4), derived from the map: a datagram
// an SGW unwraps for another SGW's address is relayed with a fresh Next-hop layer for the next SGW
// it crosses (§3.1), or forwarded as it is when that SGW builds no VPNs (§3.4). Destinations the
// map cannot tell (hosts, care-of addresses) get no route: the engine punts them to the policy.
import type { Sgw, TopologyMap } from '../../topology/map.js';

export interface RouteIntent {
  prefix: string;
  /** The SGW to wrap for; undefined to forward as it is. */
  via?: Sgw;
}

export function staticRoutes(map: TopologyMap, self: Sgw): RouteIntent[] {
  const out: RouteIntent[] = [];
  for (const other of map.sgws) {
    if (other === self) continue;
    const peer = map.nextHopPeer(self, other.outside);
    const via = peer && self.vpnRoutable && peer.vpnRoutable ? peer : undefined;
    out.push({ prefix: `${other.outside}/32`, via });
  }
  return out;
}
