// OUTBOUND: classify a datagram read from the inside by its destination (longest-prefix policy match), then
// ENCAP with the policy's End-End SA and WRAP with each next-hop SA, innermost first (docs/engine.md §2, §4.2).
#include "sa/table.h"
#include "xform/layer.h"

namespace mipsec {

Outcome xform_outbound(const Tables& t, Packet& pkt) {
  Ipv4View ip;
  if (Reason r = ipv4_parse(pkt.data, pkt.len, &ip, FragmentCheck::allow)) return fail(r);
  const PolicyEntry* policy = t.policy(ip.dst);
  if (!policy) return fail(R_NO_POLICY);
  if (policy->sa == 0) {  // bypass
    pkt.len = ip.total_len;
    return forward(0, ip.dst);
  }
  Outcome o = xform_encap(t, pkt, policy->sa);
  for (int i = 0; i < policy->wraps && o.verdict == V_FORWARD; i++) o = xform_wrap(t, pkt, policy->wrap[i]);
  if (o.verdict == V_FORWARD) o.sa = policy->sa;  // the End-End SA names the packet; nexthop is the outermost layer's
  return o;
}

}  // namespace mipsec
