// OUTBOUND: classify a datagram by policy table arg0 (longest destination prefix first, then the first policy of
// that prefix whose source prefixes hold its source) and do what the policy says: protect (ENCAP with the
// policy's End-End SA, then WRAP with each next-hop SA, innermost first), bypass, pass (as a router: TTL − 1),
// punt, drop, or INBOUND (docs/engine.md §2, §4.2).
#include "sa/table.h"
#include "xform/layer.h"

namespace mipsec {

Outcome xform_outbound(const Tables& t, Packet& pkt, uint32_t table) {
  Ipv4View ip;
  if (Reason r = ipv4_parse(pkt.data, pkt.len, &ip, FragmentCheck::allow)) return fail(r);
  const PolicyEntry* policy = t.policy(table, ip.src, ip.dst);
  if (!policy) return fail(R_NO_POLICY);
  switch (policy->action) {
    case PA_BYPASS:
      pkt.len = ip.total_len;
      return forward(0, ip.dst);
    case PA_PASS: {
      if (ip.ttl <= 1) return fail(R_TTL_EXCEEDED);
      // RFC 1624: the word at bytes 8-9 is TTL ‖ protocol.
      const uint16_t old_word = load16(pkt.data + 8);
      pkt.data[8] = uint8_t(ip.ttl - 1);
      store16(pkt.data + 10, checksum_update(load16(pkt.data + 10), old_word, uint16_t(old_word - 0x100)));
      pkt.len = ip.total_len;
      return forward(0, ip.dst);
    }
    case PA_PUNT: return fail(R_POLICY_PUNT);
    case PA_DROP: return fail(R_POLICY_DROP);
    case PA_INBOUND: return xform_inbound(t, pkt);
    case PA_PROTECT: break;
  }
  Outcome o = xform_encap(t, pkt, policy->sa);
  for (int i = 0; i < policy->wraps && o.verdict == V_FORWARD; i++) o = xform_wrap(t, pkt, policy->wrap[i]);
  if (o.verdict == V_FORWARD) o.sa = policy->sa;  // the End-End SA names the packet; nexthop is the outermost layer's
  return o;
}

}  // namespace mipsec
