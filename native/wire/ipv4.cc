#include "wire/ipv4.h"
#include <cstring>

namespace mipsec {

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
static uint16_t to_big_endian16(uint16_t v) { return v; }
static uint16_t load16_native_pad(uint8_t last) { return uint16_t(last << 8); }  // odd tail: last byte, then 0
#else
static uint16_t to_big_endian16(uint16_t v) { return uint16_t(v >> 8 | v << 8); }
static uint16_t load16_native_pad(uint8_t last) { return last; }
#endif

Reason ipv4_parse(const uint8_t* p, size_t avail, Ipv4View* out, FragmentCheck frag) {
  if (avail < kIpv4MinHeader) return R_TRUNCATED;
  if ((p[0] >> 4) != 4) return R_BAD_IP_VERSION;
  const size_t header_len = size_t(p[0] & 0x0f) * 4;
  const size_t total_len = load16(p + 2);
  if (header_len < kIpv4MinHeader || header_len > total_len) return R_BAD_IHL;
  if (total_len > avail) return R_BAD_TOTAL_LENGTH;
  if (ones_complement_sum(p, header_len) != 0xffff) return R_BAD_IP_CHECKSUM;
  const uint16_t flags_frag = load16(p + 6);
  if (frag == FragmentCheck::reject && (flags_frag & (kIpv4Mf | kIpv4OffsetMask))) return R_FRAGMENT;
  out->header_len = header_len;
  out->total_len = total_len;
  out->tos = p[1];
  out->id = load16(p + 4);
  out->flags_frag = flags_frag;
  out->ttl = p[8];
  out->proto = p[9];
  out->src = load32(p + 12);
  out->dst = load32(p + 16);
  return R_NONE;
}

uint16_t ones_complement_sum(const uint8_t* p, size_t len, uint32_t initial) {
  // The sum is byte-order independent (RFC 1071 §2(B)): add native 32-bit words, fold, swap once at the end.
  uint64_t sum = 0;
  size_t i = 0;
  for (; i + 4 <= len; i += 4) {
    uint32_t w;
    std::memcpy(&w, p + i, 4);
    sum += w;
  }
  if (i + 2 <= len) {
    uint16_t w;
    std::memcpy(&w, p + i, 2);
    sum += w;
    i += 2;
  }
  if (i < len) sum += load16_native_pad(p[i]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  uint32_t be = to_big_endian16(uint16_t(sum)) + initial;
  while (be >> 16) be = (be & 0xffff) + (be >> 16);
  return uint16_t(be);
}

uint16_t checksum_update(uint16_t checksum, uint16_t old_word, uint16_t new_word) {
  uint32_t sum = uint32_t(uint16_t(~checksum)) + uint16_t(~old_word) + new_word;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

void ipv4_build(uint8_t* p, const OuterHeader& h, size_t total_len) {
  p[0] = 0x45;
  p[1] = h.tos;
  store16(p + 2, uint16_t(total_len));
  store16(p + 4, h.id);
  store16(p + 6, h.df);
  p[8] = h.ttl;
  p[9] = h.proto;
  p[10] = p[11] = 0;
  store32(p + 12, h.src);
  store32(p + 16, h.dst);
  store16(p + 10, internet_checksum(p, kIpv4MinHeader));
}

size_t ipip_whole_inner(const uint8_t* p, size_t len) {
  if (len < 2 * kIpv4MinHeader || p[0] >> 4 != 4 || p[9] != PROTO_IPIP) return 0;
  const size_t ihl = size_t(p[0] & 0x0f) * 4;
  const size_t total = load16(p + 2);
  if (ihl < kIpv4MinHeader || total > len || total < ihl + kIpv4MinHeader || (load16(p + 6) & 0x3fff) != 0) return 0;
  const uint8_t* q = p + ihl;
  const size_t inner_ihl = size_t(q[0] & 0x0f) * 4;
  const size_t inner_total = load16(q + 2);
  if (q[0] >> 4 != 4 || inner_ihl < kIpv4MinHeader || inner_total < inner_ihl || inner_total > total - ihl) return 0;
  return q[8] == 0 ? 0 : ihl;
}

}  // namespace mipsec
