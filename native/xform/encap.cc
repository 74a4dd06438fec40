// ENCAP: inner IPv4 → IPv4 / [SKIP] / [AH] / ESP / inner (docs/engine.md §2, §6).
#include <cstring>
#include "sa/table.h"
#include "wire/ah.h"
#include "wire/esp.h"
#include "xform/icv.h"
#include "xform/layer.h"

namespace mipsec {

Outcome xform_encap(const Tables& t, Packet& pkt, uint32_t sa_id) {
  Sa* sa = find_out_sa(t, sa_id, Role::end);
  if (!sa) return fail(R_NO_SA);
  Ipv4View inner;
  if (Reason r = ipv4_parse(pkt.data, pkt.len, &inner, FragmentCheck::allow)) return fail(r, sa_id);
  if (sa->packet_limit_reached()) return fail(R_REKEY, sa_id);  // before any sequence number; packet as given
  const size_t len = inner.total_len;  // bytes beyond the datagram are not protected

  const MacAlg ah_alg = sa->cfg.ah_alg;
  const size_t skip_len = skip_bytes(*sa);
  const size_t ah_bytes = sa->has_ah() ? ah_len(ah_alg) : 0;
  const size_t head = kIpv4MinHeader + skip_len + ah_bytes + kEspHeader;
  const size_t pad = esp_pad_len(len);
  const size_t body = len + pad + kEspTrailer;  // encrypted bytes
  const size_t total = head + body + kEspTag;
  if (pkt.headroom() < head || size_t(pkt.hi - pkt.data) < body + kEspTag || total > kMaxIpTotal)
    return fail(R_NO_ROOM, sa_id);

  uint32_t esp_seq, ah_seq = 0;
  if (!sa->has_seq_left() || !sa->next_esp_seq(&esp_seq) || (sa->has_ah() && !sa->next_ah_seq(&ah_seq)))
    return fail(R_SEQ_EXHAUSTED, sa_id);

  uint8_t* ip = pkt.data - head;
  uint8_t* ah = ip + kIpv4MinHeader + skip_len;
  uint8_t* esp = ah + ah_bytes;
  store32(esp, sa->cfg.esp_spi);
  store32(esp + 4, esp_seq);
  store64(esp + 8, esp_seq);  // IV = 64-bit BE sequence number
  esp_write_trailer(pkt.data + len, pad, PROTO_IPIP);

  CryptoLease lease(*sa);
  SaCrypto* c = lease.get();
  if (!c) return fail(R_AUTH, sa_id);
  uint8_t nonce[kNonceBytes];
  std::memcpy(nonce, sa->esp_salt(), kSaltBytes);
  std::memcpy(nonce + kSaltBytes, esp + 8, 8);
  if (!c->esp.seal(nonce, esp, 8, pkt.data, body, pkt.data + body)) return fail(R_AUTH, sa_id);

  const uint32_t first_seq = sa->has_ah() ? ah_seq : esp_seq;
  ipv4_build(ip, outer_for(*sa, inner, first_seq, sa->has_ah() ? PROTO_AH : PROTO_ESP), total);
  std::memcpy(ip + kIpv4MinHeader, sa->cfg.skip_header, skip_len);
  if (sa->has_ah()) {
    ah_build(ah, ah_alg, PROTO_ESP, sa->cfg.ah_spi, ah_seq);
    if (ah_alg == MacAlg::gmac_aes128) store64(ah + kAhFixed, ah_seq);
    const IcvInput in{
        ip, kIpv4MinHeader, skip_len ? ip + kIpv4MinHeader : nullptr, skip_len, ah, esp, kEspHeader + body + kEspTag};
    if (!ah_tag(*sa, *c, in, ah + ah_tag_offset(ah_alg))) return fail(R_AUTH, sa_id);
  }
  const bool due = sa->count(len);
  pkt.data = ip;
  pkt.len = total;
  return due ? rekey_due(sa_id, sa->cfg.dst) : forward(sa_id, sa->cfg.dst);
}

}  // namespace mipsec
