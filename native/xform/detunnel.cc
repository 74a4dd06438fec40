// OUTBOUND `detunnel`: a home agent's end of its mobile nodes' reverse tunnels (RFC 3024; docs/engine.md §4.2). The
// bindings are already in the table as `tunnel` policies (home address → care-of address), so they decide both
// directions: a reverse tunnel is opened only when the tunnel a reply would take ends exactly where it came from.
#include "sa/table.h"
#include "xform/layer.h"

namespace mipsec {

Outcome policy_detunnel(const Tables& t, Packet& pkt, const Ipv4View& outer, uint32_t table) {
  // IPIP_DECAP's checks on the header OUTBOUND parsed (a fragment was punted before); pkt is the datagram inside.
  Ipv4View inner;
  if (Reason r = ipip_open(pkt, outer, &inner)) return fail(r);
  // Only a registered mobile node, from its own care-of address, with its home address as the source inside: anyone
  // else could have the home agent emit datagrams with a home address as their source.
  const PolicyEntry* reply = t.policy(table, inner.dst, inner.src, inner.proto);
  if (!reply || reply->action != PA_TUNNEL || reply->tunnel_src != outer.dst || reply->tunnel_dst != outer.src)
    return fail(R_UNTRUSTED_TUNNEL);
  // For another away mobile node: into its tunnel, as if it had arrived plain; else the home agent sends it on as it
  // came out of the tunnel, next hop its destination.
  const PolicyEntry* onward = t.policy(table, inner.src, inner.dst, inner.proto);
  if (onward && onward->action == PA_TUNNEL) return policy_tunnel(pkt, inner, *onward);
  return forward(0, inner.dst);
}

}  // namespace mipsec
