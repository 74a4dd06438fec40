// IPIP_ENCAP / IPIP_DECAP (RFC 2003, docs/engine.md §6), and OUTBOUND `tunnel`, which ends in IPIP_ENCAP (§4.2).
#include "sa/table.h"
#include "wire/ipv4.h"
#include "xform/layer.h"

namespace mipsec {

constexpr uint8_t kIpipTtl = 64;

Outcome xform_ipip_encap(Packet& pkt, uint32_t outer_src, uint32_t outer_dst) {
  Ipv4View inner;
  if (Reason r = ipv4_parse(pkt.data, pkt.len, &inner, FragmentCheck::allow)) return fail(r);
  if (ipip_loop(inner, outer_dst)) return fail(R_LOOP);
  pkt.len = inner.total_len;
  if (pkt.headroom() < kIpv4MinHeader || pkt.len + kIpv4MinHeader > kMaxIpTotal) return fail(R_NO_ROOM);
  OuterHeader h{inner.tos, inner.id, uint16_t(inner.flags_frag & kIpv4Df), kIpipTtl, PROTO_IPIP, outer_src, outer_dst};
  pkt.data -= kIpv4MinHeader;
  pkt.len += kIpv4MinHeader;
  ipv4_build(pkt.data, h, pkt.len);
  return forward(0, outer_dst);
}

Outcome policy_tunnel(Packet& pkt, const Ipv4View& ip, const PolicyEntry& policy) {
  // RFC 2003 §3.2 first (what comes from the tunnel exit never goes back into it), then §3.1: the home agent forwards
  // the datagram into the tunnel, so its TTL drops by one (≤ 1: the control plane's, unchanged).
  if (ipip_loop(ip, policy.tunnel_dst)) return fail(R_LOOP);
  if (ip.ttl <= 1) return fail(R_TTL_EXCEEDED);
  decrement_ttl(pkt, ip);
  return xform_ipip_encap(pkt, policy.tunnel_src, policy.tunnel_dst);
}

Reason ipip_open(Packet& pkt, const Ipv4View& outer, Ipv4View* inner) {
  if (outer.proto != PROTO_IPIP) return R_BAD_NEXT_HEADER;
  uint8_t* at = pkt.data + outer.header_len;
  if (Reason r = ipv4_parse(at, outer.total_len - outer.header_len, inner, FragmentCheck::allow)) return r;
  if (inner->ttl == 0) return R_TTL_EXPIRED;
  pkt.data = at;
  pkt.len = inner->total_len;
  return R_NONE;
}

Outcome xform_ipip_decap(Packet& pkt) {
  Ipv4View outer, inner;
  if (Reason r = ipv4_parse(pkt.data, pkt.len, &outer)) return fail(r);
  if (Reason r = ipip_open(pkt, outer, &inner)) return fail(r);
  return deliver(0);
}

}  // namespace mipsec
