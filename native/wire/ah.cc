#include "wire/ah.h"

namespace mipsec {

Reason ah_peek_spi(const uint8_t* p, size_t avail, uint32_t* spi) {
  if (avail < 8) return R_TRUNCATED;
  *spi = load32(p + 4);
  return R_NONE;
}

Reason ah_parse(const uint8_t* p, size_t avail, MacAlg alg, AhView* out) {
  const size_t len = ah_len(alg);
  if (avail < kAhFixed) return R_TRUNCATED;
  if (size_t(p[1]) != len / 4 - 2 || load16(p + 2) != 0) return R_BAD_AH;
  if (avail < len) return R_TRUNCATED;
  out->next = p[0];
  out->spi = load32(p + 4);
  out->seq = load32(p + 8);
  return R_NONE;
}

void ah_build(uint8_t* p, MacAlg alg, uint8_t next, uint32_t spi, uint32_t seq) {
  p[0] = next;
  p[1] = uint8_t(ah_len(alg) / 4 - 2);
  p[2] = p[3] = 0;
  store32(p + 4, spi);
  store32(p + 8, seq);
}

}  // namespace mipsec
