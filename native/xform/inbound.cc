// INBOUND: everything a gateway does with a packet addressed to it (docs/engine.md §5): peel up to
// kMaxLayers layers, relay next-hop layers in place, decapsulate the End-End layer.
#include <cstring>
#include <openssl/crypto.h>
#include "sa/successors.h"
#include "sa/table.h"
#include "wire/ah.h"
#include "wire/esp.h"
#include "xform/icv.h"
#include "xform/layer.h"

namespace mipsec {

namespace {

// One layer after its SA was found: where its headers are.
struct Layer {
  uint8_t* ip;
  size_t ip_len;
  const uint8_t* skip;  // null in mode spi
  size_t skip_len;
  uint8_t* first;  // the AH or ESP header
  size_t first_len;  // bytes from it to the end of the datagram
  uint8_t first_proto;
};

// Parses the AH of `sa` at the layer's first header and checks SPI, next header and the window.
Reason check_ah(Sa& sa, const Layer& l, uint8_t want_next, AhView* ah) {
  if (Reason r = ah_parse(l.first, l.first_len, sa.cfg.ah_alg, ah)) return r;
  if (ah->spi != sa.cfg.ah_spi) return R_BAD_SPI;
  if (ah->next != want_next) return R_BAD_NEXT_HEADER;
  if (!sa.replay_check_ah(ah->seq)) return R_REPLAY;
  return R_NONE;
}

bool verify_ah(Sa& sa, SaCrypto& c, const Layer& l, const uint8_t* payload, size_t covered) {
  uint8_t tag[kIcvBytes];
  const IcvInput in{l.ip, l.ip_len, l.skip, l.skip_len, l.first, payload, covered};
  return ah_tag(sa, c, in, tag) && CRYPTO_memcmp(tag, l.first + ah_tag_offset(sa.cfg.ah_alg), kIcvBytes) == 0;
}

// A plain datagram (not SKIP/AH/ESP) a verified Next-hop layer of `sa` protected (pkt, header dip): with `plain`, one
// from a source the SA speaks for that is not IP-in-IP is classified by the SA's policy table — pass forwards it as a
// router does (TTL − 1), drop drops it —; everything else (no policy, any other action, TTL ≤ 1, another source, a
// tunnel, no `plain`) is punted nexthop_plain for the role's policy, as it always was.
Outcome plain_outbound(const Tables& t, const Sa& sa, Packet& pkt, const Ipv4View& dip) {
  const uint32_t id = sa.cfg.id;
  if (!sa.cfg.plain_on || dip.proto == PROTO_IPIP || !sa.cfg.plain_admits(dip.src)) return punt(R_NEXTHOP_PLAIN, id);
  const PolicyEntry* policy = t.policy(sa.cfg.plain_table, dip.src, dip.dst, dip.proto);
  if (policy && policy->action == PA_DROP) return fail(R_POLICY_DROP, id);
  if (!policy || policy->action != PA_PASS || dip.ttl <= 1) return punt(R_NEXTHOP_PLAIN, id);
  decrement_ttl(pkt, dip);
  return forward(id, dip.dst);
}

// Role nexthop: verify and strip the layer, then continue (local), relay, forward or punt.
// Returns true with `out` set when the packet is decided; false to continue the loop with the datagram.
bool nexthop_layer(const Tables& t, Sa& sa, const Layer& l, Packet& pkt, uint32_t* authed, Outcome* out) {
  const uint32_t id = sa.cfg.id;
  AhView ah;
  if (l.first_proto != PROTO_AH) return *out = fail(R_SA_MISMATCH, id), true;
  if (Reason r = check_ah(sa, l, PROTO_IPIP, &ah)) return *out = fail(r, id), true;
  const size_t ah_bytes = ah_len(sa.cfg.ah_alg);
  uint8_t* d = l.first + ah_bytes;
  const size_t d_len = l.first_len - ah_bytes;
  size_t covered;
  if (Reason r = covered_len(d, d_len, sa.cfg.coverage, &covered)) return *out = fail(r, id), true;
  {
    CryptoLease lease(sa);
    if (!lease.get() || !verify_ah(sa, *lease.get(), l, d, covered)) return *out = fail(R_AUTH, id), true;
  }
  if (!sa.replay_commit(true, ah.seq, false, 0)) return *out = fail(R_REPLAY, id), true;
  sa.count(d_len);
  *authed = id;
  pkt.data = d;
  pkt.len = d_len;

  Ipv4View dip;
  if (Reason r = ipv4_parse(d, d_len, &dip)) return *out = fail(r, id), true;
  pkt.len = dip.total_len;
  // Only a further layer goes on in the engine: a datagram a Next-hop layer alone protects is judged by the
  // role's policy (draft §3.2 step 2), never delivered, peeled or relayed here.
  if (dip.proto != PROTO_SKIP && dip.proto != PROTO_AH && dip.proto != PROTO_ESP)
    return *out = plain_outbound(t, sa, pkt, dip), true;
  if (t.is_local(dip.dst)) return false;
  if (!sa.cfg.relay) return *out = fail(R_RELAY_DENIED, id), true;
  uint32_t via;
  if (!t.route(dip.dst, &via)) return *out = fail(R_NO_ROUTE, id), true;
  if (via == 0) return *out = forward(id, dip.dst), true;
  Sa* next = find_out_sa(t, via, Role::nexthop);
  if (!next) return *out = fail(R_NO_SA, id), true;
  // Relay: the new layer ends where the old one ended, so the packet never moves its datagram.
  *out = prepend_nexthop_layer(*next, pkt, dip);
  // A FORWARD names the SA that authenticated, unless the new layer's SA reached its soft limit (it says which).
  if (out->verdict == V_FORWARD && out->reason != R_REKEY_DUE) out->sa = id;
  return true;
}

// RFC 4301 §5.2: the opened datagram's source and destination lie in the SA's selectors (one too short to
// name its addresses does not), or it is whole IP-in-IP from the selectors' tunnel source to its destination whose
// inner datagram's do (src/engine/inbound-rules.ts selectorsAdmitDatagram).
bool selectors_admit(const Selectors& s, const uint8_t* d, size_t len) {
  if (!s.on) return true;
  if (len < kIpv4MinHeader || d[0] >> 4 != 4) return false;
  const uint32_t src = load32(d + 12), dst = load32(d + 16);
  if (s.admit(src, dst)) return true;
  if (s.tunnel_dst == 0 || src != s.tunnel_src || dst != s.tunnel_dst) return false;
  const size_t inner = ipip_whole_inner(d, len);
  return inner != 0 && s.admit(load32(d + inner + 12), load32(d + inner + 16));
}

// selectorMiss { outbound }: an opened datagram outside the selectors, from a source the SA speaks for (its src
// selectors), is classified by the SA's policy table: protect seals it and FORWARDs it, drop drops it; anything
// else (no policy, punt, bypass, pass, inbound, a spent SA in the chain) punts it as selectorMiss 'punt' would.
Outcome miss_outbound(const Tables& t, Sa& sa, Packet& pkt) {
  const uint32_t id = sa.cfg.id;
  if (pkt.len < kIpv4MinHeader || pkt.data[0] >> 4 != 4) return punt(R_SELECTOR, id);
  const uint32_t src = load32(pkt.data + 12), dst = load32(pkt.data + 16);
  if (!sa.cfg.selectors.admit_src(src)) return punt(R_SELECTOR, id);
  const PolicyEntry* policy = t.policy(sa.cfg.selector_miss_table, src, dst, pkt.data[9]);
  if (policy && policy->action == PA_DROP) return fail(R_POLICY_DROP, id);
  // Only an End-End layer re-encrypts: a protect without one (sa 0, Next-hop layers alone) is the control plane's.
  if (!policy || policy->action != PA_PROTECT || policy->sa == 0 || policy_spent_sa(t, *policy))
    return punt(R_SELECTOR, id);
  const size_t len = pkt.len;
  const Outcome o = policy_protect(t, pkt, *policy);
  if (o.verdict == V_FORWARD) sa.count(len);
  // Another thread spent the End-End SA between the check and ENCAP (which left the datagram as it was): the
  // control plane takes the datagram on, as for a spent SA found by the check.
  if (o.verdict == V_PUNT && o.reason == R_REKEY && o.sa == policy->sa) return punt(R_SELECTOR, id);
  return o;
}

// Role end: [AH] → ESP open → padding → inner datagram.
Outcome end_layer(const Tables& t, Sa& sa, const Layer& l, Packet& pkt) {
  const uint32_t id = sa.cfg.id;
  const bool with_ah = sa.has_ah();
  if (with_ah != (l.first_proto == PROTO_AH)) return fail(R_SA_MISMATCH, id);
  CryptoLease lease(sa);
  SaCrypto* c = lease.get();
  if (!c) return fail(R_AUTH, id);
  AhView ah{};
  uint8_t* esp = l.first;
  size_t esp_len = l.first_len;
  if (with_ah) {
    if (Reason r = check_ah(sa, l, PROTO_ESP, &ah)) return fail(r, id);
    const size_t ah_bytes = ah_len(sa.cfg.ah_alg);
    esp += ah_bytes;
    esp_len -= ah_bytes;
    if (!verify_ah(sa, *c, l, esp, esp_len)) return fail(R_AUTH, id);
  }
  EspView ev;
  if (Reason r = esp_parse(esp, esp_len, &ev)) return fail(r, id);
  if (ev.spi != sa.cfg.esp_spi) return fail(R_BAD_SPI, id);
  if (!sa.replay_check_esp(ev.seq)) return fail(R_REPLAY, id);
  uint8_t nonce[kNonceBytes];
  std::memcpy(nonce, sa.esp_salt(), kSaltBytes);
  std::memcpy(nonce + kSaltBytes, ev.iv, 8);
  uint8_t* pt = esp + kEspHeader;
  if (!c->esp.open(nonce, esp, 8, pt, ev.ct_len, pt + ev.ct_len)) return fail(R_AUTH, id);
  if (!sa.replay_commit(with_ah, ah.seq, true, ev.seq)) return fail(R_REPLAY, id);
  size_t payload_len;
  uint8_t next;
  if (Reason r = esp_check_trailer(pt, ev.ct_len, &payload_len, &next)) return fail(r, id);
  if (next == PROTO_NONE) return fail(R_DUMMY, id);
  if (next != PROTO_IPIP) return fail(R_BAD_NEXT_HEADER, id);
  if (!selectors_admit(sa.cfg.selectors, pt, payload_len)) {
    if (sa.cfg.selector_miss == SelectorMiss::drop) return fail(R_SELECTOR, id);
    // The opened datagram goes to the control plane with this SA (windows committed, not counted as delivered),
    // or through the SA's policy table.
    pkt.data = pt;
    pkt.len = payload_len;
    return sa.cfg.selector_miss == SelectorMiss::outbound ? miss_outbound(t, sa, pkt) : punt(R_SELECTOR, id);
  }
  sa.count(payload_len);
  pkt.data = pt;
  pkt.len = payload_len;
  return deliver(id);
}

}  // namespace

Outcome xform_inbound(const Tables& t, Packet& pkt) {
  uint32_t authed = 0;  // the last SA that authenticated the packet
  int peeled = 0;
  bool after_ipip = false;
  std::shared_ptr<const Tables> keyed;  // the tables with the successor key this packet opened (held to its end)
  for (;;) {
    Ipv4View ip;
    if (Reason r = ipv4_parse(pkt.data, pkt.len, &ip)) return fail(r, authed);
    pkt.len = ip.total_len;
    if (after_ipip && ip.ttl == 0) return fail(R_TTL_EXPIRED, authed);
    after_ipip = false;
    const uint8_t proto = ip.proto;
    // Not a layer: on the first layer the packet itself; after bare IP-in-IP the peeled datagram, which no SA
    // authenticated (a Next-hop layer only ever goes on with SKIP/AH/ESP), so the control plane judges it.
    if (proto != PROTO_SKIP && proto != PROTO_AH && proto != PROTO_ESP && proto != PROTO_IPIP)
      return fail(R_NOT_IPSEC, authed);
    if (peeled == kMaxLayers) return fail(R_TOO_MANY_LAYERS, authed);
    peeled++;

    uint8_t* l4 = pkt.data + ip.header_len;
    const size_t l4_len = ip.total_len - ip.header_len;
    if (proto == PROTO_IPIP) {
      pkt.data = l4;
      pkt.len = l4_len;
      after_ipip = true;
      continue;
    }

    Layer l{pkt.data, ip.header_len, nullptr, 0, l4, l4_len, proto};
    Sa* sa;
    if (proto == PROTO_SKIP) {
      SkipView skip;
      if (Reason r = skip_parse(l4, l4_len, &skip)) return fail(r, authed);
      if (skip.next != PROTO_AH && skip.next != PROTO_ESP) return fail(R_BAD_SKIP, authed);
      const SkipKey key = skip_key(skip, ip.src);
      sa = t.find_skip(key);
      if (!sa && !keyed && t.successors && (keyed = t.successors->key(t, ip.src, ip.dst, skip, l4)))
        sa = keyed->find_skip(key);
      if (!sa) return fail(R_UNKNOWN_KEY, authed);
      if (skip.dst_nsid != sa->skip.dst_nsid || skip.dst_mkid != sa->skip.dst_mkid)
        return fail(R_BAD_DST_MKID, sa->cfg.id);
      if (skip.crypt_alg != sa->skip.crypt_alg || skip.mac_alg != sa->skip.mac_alg)
        return fail(R_SA_MISMATCH, sa->cfg.id);
      l.skip = l4;
      l.skip_len = skip.len;
      l.first = l4 + skip.len;
      l.first_len = l4_len - skip.len;
      l.first_proto = skip.next;
    } else {
      uint32_t spi;
      if (Reason r = proto == PROTO_AH ? ah_peek_spi(l4, l4_len, &spi) : esp_peek_spi(l4, l4_len, &spi))
        return fail(r, authed);
      sa = t.find_spi(proto, spi);
      if (!sa) return fail(R_BAD_SPI, authed);
    }

    if (sa->cfg.role == Role::end) return end_layer(t, *sa, l, pkt);
    Outcome out;
    if (nexthop_layer(t, *sa, l, pkt, &authed, &out)) return out;
  }
}

}  // namespace mipsec
