#include "xform/icv.h"
#include <cstring>
#include <openssl/crypto.h>
#include "wire/esp.h"
#include "wire/ipv4.h"

namespace mipsec {

Reason covered_len(const uint8_t* d, size_t len, Coverage coverage, size_t* out) {
  if (coverage == Coverage::full) {
    *out = len;
    return R_NONE;
  }
  size_t at = 0;
  for (;;) {  // at an IPv4 header
    if (len - at < kIpv4MinHeader) return R_TRUNCATED;
    const size_t ihl = size_t(d[at] & 0x0f) * 4;
    if (ihl < kIpv4MinHeader || len - at < ihl) return R_TRUNCATED;
    uint8_t proto = d[at + 9];
    at += ihl;
    if (proto == PROTO_SKIP) {
      SkipView skip;
      if (Reason r = skip_parse(d + at, len - at, &skip)) return r;
      at += skip.len;
      proto = skip.next;
    }
    if (proto == PROTO_AH) {
      if (len - at < 2) return R_TRUNCATED;
      const size_t ah_bytes = (size_t(d[at + 1]) + 2) * 4;
      if (len - at < ah_bytes) return R_TRUNCATED;
      proto = d[at];
      at += ah_bytes;
      if (proto == PROTO_IPIP) continue;
    }
    if (proto == PROTO_ESP) {
      if (len - at < kEspHeader) return R_TRUNCATED;
      *out = at + kEspHeader;
      return R_NONE;
    }
    // No ESP ends the walk: nothing else protects the payload, so the layer covers the whole datagram.
    *out = len;
    return R_NONE;
  }
}

// Immutable IPv4 options (RFC 4302 App. A): kept in the ICV input; every other option is zeroed.
static bool option_immutable(uint8_t type) {
  return type == 0 || type == 1 || type == 130 || type == 133 || type == 134 || type == 148 || type == 149;
}

static void zero_mutable_options(uint8_t* opt, size_t len) {
  size_t at = 0;
  while (at < len) {
    const uint8_t type = opt[at];
    if (type == 0 || type == 1) {
      at++;
      continue;
    }
    const size_t olen = at + 1 < len ? opt[at + 1] : 0;
    if (olen < 2 || olen > len - at) {  // malformed: nothing after it can be trusted
      std::memset(opt + at, 0, len - at);
      return;
    }
    if (!option_immutable(type)) std::memset(opt + at, 0, olen);
    at += olen;
  }
}

bool ah_tag(const Sa& sa, SaCrypto& c, const IcvInput& in, uint8_t* tag) {
  // Headers are copied into one scratch block with the mutable bits zeroed. A short payload (headers
  // coverage, small packets) joins them so the MAC runs one update; a long one is fed in place.
  // GHASH has a fixed cost per update and per partial block: feeding the headers in place as five
  // pieces (patched IPv4 copy, SKIP byte 0, SKIP rest, AH, zero tag) made a GMAC relay ~35% slower.
  constexpr size_t kHeaderBytes = 60 + kSkipMaxHeader + 36;
  uint8_t scratch[kHeaderBytes + 384];
  size_t n = 0;
  std::memcpy(scratch, in.ip, in.ip_len);
  scratch[1] = 0;  // TOS
  scratch[6] = scratch[7] = 0;  // flags, fragment offset
  scratch[8] = 0;  // TTL
  scratch[10] = scratch[11] = 0;  // checksum
  zero_mutable_options(scratch + kIpv4MinHeader, in.ip_len - kIpv4MinHeader);
  n = in.ip_len;
  if (in.skip) {
    std::memcpy(scratch + n, in.skip, in.skip_len);
    scratch[n] &= 0xf0;  // reserved nibble
    n += in.skip_len;
  }
  const MacAlg alg = sa.cfg.ah_alg;
  const size_t tag_at = ah_tag_offset(alg);
  std::memcpy(scratch + n, in.ah, tag_at);
  std::memset(scratch + n + tag_at, 0, kIcvBytes);
  n += tag_at + kIcvBytes;
  const uint8_t* payload = in.payload;
  size_t payload_len = in.payload_len;
  if (payload_len <= sizeof scratch - n) {
    std::memcpy(scratch + n, payload, payload_len);
    n += payload_len;
    payload_len = 0;
  }

  if (alg == MacAlg::gmac_aes128) {
    uint8_t nonce[kNonceBytes];
    std::memcpy(nonce, sa.gmac_salt(), kSaltBytes);
    std::memcpy(nonce + kSaltBytes, in.ah + kAhFixed, kGmacIvBytes);
    return c.gmac.begin(nonce) && c.gmac.update(scratch, n) && c.gmac.update(payload, payload_len) &&
           c.gmac.finish(tag);
  }
  uint8_t full[kSha256Bytes];
  bool ok = c.hmac.begin() && c.hmac.update(scratch, n) && c.hmac.update(payload, payload_len) && c.hmac.finish(full);
  std::memcpy(tag, full, kIcvBytes);
  return ok;
}

}  // namespace mipsec
