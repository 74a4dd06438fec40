#include "wire/skip.h"
#include <cstring>

namespace mipsec {

static bool known_crypt_alg(uint8_t a) { return a == 0 || a == 250 || a == 251 || a == 252; }
static bool known_mac_alg(uint8_t a) { return a == 0 || a == 250 || a == 251; }
static size_t mkid_bytes(uint8_t nsid) { return nsid == 1 ? 4 : 0; }

Reason skip_parse(const uint8_t* p, size_t avail, SkipView* out) {
  if (avail < kSkipFixed) return R_TRUNCATED;
  if ((p[0] >> 4) != kSkipVersion) return R_BAD_SKIP;
  const uint8_t src_nsid = p[1], dst_nsid = p[2];
  if (src_nsid > 1 || dst_nsid > 1) return R_UNKNOWN_NSID;
  if (p[8] != kKijAes256Kw || !known_crypt_alg(p[9]) || !known_mac_alg(p[10]) || p[11] != 0) return R_UNKNOWN_ALG;
  const size_t len = kSkipFixed + kWrappedKpBytes + mkid_bytes(src_nsid) + mkid_bytes(dst_nsid);
  if (avail < len) return R_TRUNCATED;
  out->len = len;
  out->src_nsid = src_nsid;
  out->dst_nsid = dst_nsid;
  out->next = p[3];
  out->n = load32(p + 4);
  out->kij_alg = p[8];
  out->crypt_alg = p[9];
  out->mac_alg = p[10];
  out->wrapped_kp = p + kSkipFixed;
  size_t at = kSkipFixed + kWrappedKpBytes;
  out->src_mkid = out->dst_mkid = 0;
  if (src_nsid == 1) {
    out->src_mkid = load32(p + at);
    at += 4;
  }
  if (dst_nsid == 1) out->dst_mkid = load32(p + at);
  return R_NONE;
}

bool SkipKey::operator==(const SkipKey& o) const {
  return src_nsid == o.src_nsid && kij_alg == o.kij_alg && n == o.n && src_id == o.src_id &&
         std::memcmp(wrapped_kp, o.wrapped_kp, kWrappedKpBytes) == 0;
}

size_t SkipKeyHash::operator()(const SkipKey& k) const {
  // The wrapped Kp is random: two of its words, mixed with the small fields, spread keys well.
  uint64_t a, b;
  std::memcpy(&a, k.wrapped_kp, 8);
  std::memcpy(&b, k.wrapped_kp + 8, 8);
  uint64_t h =
      a ^ (b * 0x9e3779b97f4a7c15ull) ^ (uint64_t(k.n) << 32 | k.src_id) ^ (uint64_t(k.src_nsid) << 8 | k.kij_alg);
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 29;
  return size_t(h);
}

SkipKey skip_key(const SkipView& v, uint32_t outer_src) {
  SkipKey k;
  k.src_nsid = v.src_nsid;
  k.kij_alg = v.kij_alg;
  k.n = v.n;
  k.src_id = v.src_nsid == 0 ? outer_src : v.src_mkid;
  std::memcpy(k.wrapped_kp, v.wrapped_kp, kWrappedKpBytes);
  return k;
}

}  // namespace mipsec
