// IPIP_ENCAP / IPIP_DECAP (RFC 2003, docs/engine.md §6).
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

Outcome xform_ipip_decap(Packet& pkt) {
  Ipv4View outer, inner;
  if (Reason r = ipv4_parse(pkt.data, pkt.len, &outer)) return fail(r);
  if (outer.proto != PROTO_IPIP) return fail(R_BAD_NEXT_HEADER);
  uint8_t* at = pkt.data + outer.header_len;
  const size_t len = outer.total_len - outer.header_len;
  if (Reason r = ipv4_parse(at, len, &inner, FragmentCheck::allow)) return fail(r);
  if (inner.ttl == 0) return fail(R_TTL_EXPIRED);
  pkt.data = at;
  pkt.len = inner.total_len;
  return deliver(0);
}

}  // namespace mipsec
