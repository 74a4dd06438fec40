#include "wire/esp.h"

namespace mipsec {

Reason esp_peek_spi(const uint8_t* p, size_t avail, uint32_t* spi) {
  if (avail < 8) return R_TRUNCATED;
  *spi = load32(p);
  return R_NONE;
}

Reason esp_parse(const uint8_t* p, size_t len, EspView* out) {
  if (len < 8) return R_TRUNCATED;
  if (len < kEspMin) return R_BAD_ESP;
  out->spi = load32(p);
  out->seq = load32(p + 4);
  out->iv = p + 8;
  out->ct_len = len - kEspHeader - kEspTag;
  return R_NONE;
}

size_t esp_write_trailer(uint8_t* payload_end, size_t pad, uint8_t next) {
  for (size_t i = 0; i < pad; i++) payload_end[i] = uint8_t(i + 1);
  payload_end[pad] = uint8_t(pad);
  payload_end[pad + 1] = next;
  return pad + kEspTrailer;
}

Reason esp_check_trailer(const uint8_t* pt, size_t len, size_t* payload_len, uint8_t* next) {
  if (len < kEspTrailer) return R_BAD_ESP;
  const size_t pad = pt[len - 2];
  if (pad + kEspTrailer > len) return R_BAD_ESP;
  const uint8_t* padding = pt + len - kEspTrailer - pad;
  for (size_t i = 0; i < pad; i++)
    if (padding[i] != uint8_t(i + 1)) return R_BAD_ESP;
  *payload_len = len - kEspTrailer - pad;
  *next = pt[len - 1];
  return R_NONE;
}

}  // namespace mipsec
