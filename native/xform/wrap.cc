// WRAP: a datagram → IPv4 / [SKIP] / AH(next-hop) / datagram (docs/engine.md §2).
#include "sa/table.h"
#include "xform/layer.h"

namespace mipsec {

Outcome xform_wrap(const Tables& t, Packet& pkt, uint32_t sa_id) {
  Sa* sa = find_out_sa(t, sa_id, Role::nexthop);
  if (!sa) return fail(R_NO_SA);
  Ipv4View d;
  if (Reason r = ipv4_parse(pkt.data, pkt.len, &d, FragmentCheck::allow)) return fail(r, sa_id);
  if (sa->packet_limit_reached()) return fail(R_REKEY, sa_id);  // before trimming and any sequence number
  pkt.len = d.total_len;
  return prepend_nexthop_layer(*sa, pkt, d);
}

}  // namespace mipsec
