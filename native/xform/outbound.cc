// OUTBOUND: classify a datagram by policy table arg0 (longest destination prefix first, then the first policy of
// that prefix whose source prefixes hold its source) and do what the policy says: protect (ENCAP with the
// policy's End-End SA, then WRAP with each next-hop SA, innermost first; sa 0: the WRAPs alone), bypass, pass (as a
// router: TTL − 1), punt, drop, INBOUND, tunnel (RFC 2003 IP-in-IP as a home agent forwards into it: TTL − 1, then
// IPIP_ENCAP) or detunnel (its end of a reverse tunnel, xform/detunnel.cc) (docs/engine.md §2, §4.2).
#include "sa/table.h"
#include "wire/skip.h"
#include "xform/layer.h"

namespace mipsec {

// The word at bytes 8-9 is TTL ‖ protocol.
void decrement_ttl(Packet& pkt, const Ipv4View& ip) {
  const uint16_t old_word = load16(pkt.data + 8);
  pkt.data[8] = uint8_t(ip.ttl - 1);
  store16(pkt.data + 10, checksum_update(load16(pkt.data + 10), old_word, uint16_t(old_word - 0x100)));
}

Outcome xform_outbound(const Tables& t, Packet& pkt, uint32_t table) {
  Ipv4View ip;
  if (Reason r = ipv4_parse(pkt.data, pkt.len, &ip, FragmentCheck::allow)) return fail(r);
  const PolicyEntry* policy = t.policy(table, ip.src, ip.dst, ip.proto);
  if (!policy) return fail(R_NO_POLICY);
  // A fragment meets its datagram's policy (none names ports), but four actions need it whole, so the control plane
  // reassembles it: INBOUND opens no fragment of a sealed packet, nor detunnel one of a tunnel, a peer's Next-hop layer
  // alone admits none, and a SKIP layer passes only with its header checked.
  if ((ip.flags_frag & (kIpv4Mf | kIpv4OffsetMask)) &&
      (policy->action == PA_INBOUND || policy->action == PA_DETUNNEL ||
       (policy->action == PA_PROTECT && policy->sa == 0) || (policy->action == PA_PASS && ip.proto == PROTO_SKIP)))
    return punt(R_FRAGMENT);
  switch (policy->action) {
    case PA_BYPASS:
      pkt.len = ip.total_len;
      return forward(0, ip.dst);
    case PA_PASS:
      // A SKIP layer is no usual IP: only a policy that names SKIP passes one (a site that builds no VPNs lets the
      // layers for its hosts in, draft §3.4), and only with a header that parses; a general pass leaves it to the
      // control plane, which admits layers (a Next-hop AH to leave a site, §3.2 step 1).
      if (ip.proto == PROTO_SKIP) {
        if (policy->proto != PROTO_SKIP) return fail(R_POLICY_PUNT);
        SkipView skip;
        if (Reason r = skip_parse(pkt.data + ip.header_len, ip.total_len - ip.header_len, &skip)) return fail(r);
      }
      if (ip.ttl <= 1) return fail(R_TTL_EXCEEDED);
      decrement_ttl(pkt, ip);
      pkt.len = ip.total_len;
      return forward(0, ip.dst);
    case PA_TUNNEL:
      return policy_tunnel(pkt, ip, *policy);
    case PA_DETUNNEL:
      return policy_detunnel(t, pkt, ip, table);
    case PA_PUNT:
      return fail(R_POLICY_PUNT);
    case PA_DROP:
      return fail(R_POLICY_DROP);
    case PA_INBOUND:
      return xform_inbound(t, pkt);
    case PA_PROTECT:
      break;
  }
  // Before anything is sealed: an SA of the chain that has sealed its maxPackets punts the datagram as given
  // (re-injectable once the control plane installed the next SA). Missing or wrong SAs fail in their op below.
  if (uint32_t spent = policy_spent_sa(t, *policy)) return fail(R_REKEY, spent);
  return policy_protect(t, pkt, *policy);
}

uint32_t policy_spent_sa(const Tables& t, const PolicyEntry& policy) {
  for (int i = -1; i < policy.wraps; i++) {
    const uint32_t id = i < 0 ? policy.sa : policy.wrap[i];
    if (id == 0) continue;  // no End-End layer (sa 0: Next-hop layers alone)
    const Sa* sa = find_out_sa(t, id, i < 0 ? Role::end : Role::nexthop);
    if (sa && sa->packet_limit_reached()) return id;
  }
  return 0;
}

Outcome policy_protect(const Tables& t, Packet& pkt, const PolicyEntry& policy) {
  // sa 0: no End-End layer, the datagram goes under the Next-hop layers alone (the first names the packet).
  const uint32_t named = policy.sa != 0 ? policy.sa : policy.wrap[0];
  int i = 0;
  Outcome o = policy.sa != 0 ? xform_encap(t, pkt, policy.sa) : xform_wrap(t, pkt, policy.wrap[i++]);
  uint32_t due = o.reason == R_REKEY_DUE ? named : 0;  // the first SA of the chain that reached its soft limit
  for (; i < policy.wraps && o.verdict == V_FORWARD; i++) {
    o = xform_wrap(t, pkt, policy.wrap[i]);
    if (!due && o.reason == R_REKEY_DUE) due = policy.wrap[i];
  }
  if (o.verdict != V_FORWARD) return o;
  // The End-End SA (else the first Next-hop SA) names the packet, or the SA whose soft limit it reached; nexthop is
  // the outermost layer's.
  return due ? rekey_due(due, o.nexthop) : forward(named, o.nexthop);
}

}  // namespace mipsec
