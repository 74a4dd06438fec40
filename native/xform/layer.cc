#include "xform/layer.h"
#include <cstring>
#include "sa/table.h"
#include "wire/ah.h"
#include "xform/icv.h"

namespace mipsec {

Sa* find_out_sa(const Tables& t, uint32_t id, Role role) {
  Sa* sa = t.find(id);
  return sa && sa->cfg.direction == Direction::out && sa->cfg.role == role ? sa : nullptr;
}

OuterHeader outer_for(const Sa& sa, const Ipv4View& inner, uint32_t first_seq, uint8_t proto_spi_mode) {
  OuterHeader h;
  h.tos = inner.tos;
  h.id = uint16_t(first_seq);
  h.df = inner.flags_frag & kIpv4Df;
  h.ttl = sa.cfg.ttl;
  h.proto = sa.cfg.mode == Mode::skip ? uint8_t(PROTO_SKIP) : proto_spi_mode;
  h.src = sa.cfg.src;
  h.dst = sa.cfg.dst;
  return h;
}

Outcome prepend_nexthop_layer(Sa& sa, Packet& pkt, const Ipv4View& d) {
  const uint32_t id = sa.cfg.id;
  const MacAlg alg = sa.cfg.ah_alg;
  const size_t skip_len = skip_bytes(sa);
  const size_t head = kIpv4MinHeader + skip_len + ah_len(alg);
  if (pkt.headroom() < head || head + pkt.len > kMaxIpTotal) return fail(R_NO_ROOM, id);
  size_t covered;
  if (Reason r = covered_len(pkt.data, pkt.len, sa.cfg.coverage, &covered)) return fail(r, id);
  uint32_t seq;
  if (!sa.next_ah_seq(&seq)) return fail(R_SEQ_EXHAUSTED, id);

  uint8_t* ip = pkt.data - head;
  uint8_t* ah = ip + kIpv4MinHeader + skip_len;
  ipv4_build(ip, outer_for(sa, d, seq, PROTO_AH), head + pkt.len);
  std::memcpy(ip + kIpv4MinHeader, sa.cfg.skip_header, skip_len);
  ah_build(ah, alg, PROTO_IPIP, sa.cfg.ah_spi, seq);
  if (alg == MacAlg::gmac_aes128) store64(ah + kAhFixed, seq);  // IV = 64-bit BE sequence number

  CryptoLease lease(sa);
  if (!lease.get()) return fail(R_AUTH, id);
  const IcvInput in{ip, kIpv4MinHeader, skip_len ? ip + kIpv4MinHeader : nullptr, skip_len, ah, pkt.data, covered};
  if (!ah_tag(sa, *lease.get(), in, ah + ah_tag_offset(alg))) return fail(R_AUTH, id);

  const bool due = sa.count(pkt.len);
  pkt.data = ip;
  pkt.len += head;
  return due ? rekey_due(id, sa.cfg.dst) : forward(id, sa.cfg.dst);
}

}  // namespace mipsec
