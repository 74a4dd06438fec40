#include "wire/icmp40.h"
#include "wire/bytes.h"
#include "wire/ipv4.h"

namespace mipsec {

constexpr uint8_t kIcmpSecurityFailure = 40;
constexpr size_t kIcmp40Header = 8;
constexpr uint8_t kIcmp40MaxCode = 5;

const char* icmp40_status_name(Icmp40Status s) {
  switch (s) {
    case Icmp40Status::ok:
      return "ok";
    case Icmp40Status::truncated:
      return "truncated";
    case Icmp40Status::bad_type:
      return "bad_type";
    case Icmp40Status::bad_checksum:
      return "bad_checksum";
    case Icmp40Status::bad_code:
      return "bad_code";
    case Icmp40Status::bad_pointer:
      return "bad_pointer";
  }
  return "unknown";
}

Icmp40Status icmp40_parse(const uint8_t* p, size_t len, Icmp40View* out) {
  if (len < kIcmp40Header) return Icmp40Status::truncated;
  if (p[0] != kIcmpSecurityFailure) return Icmp40Status::bad_type;
  if (ones_complement_sum(p, len) != 0xffff) return Icmp40Status::bad_checksum;
  if (p[1] > kIcmp40MaxCode) return Icmp40Status::bad_code;
  const size_t original_len = len - kIcmp40Header;
  if (original_len < kIpv4MinHeader) return Icmp40Status::truncated;
  const uint16_t pointer = load16(p + 6);
  if (pointer != 0 && (pointer < kIpv4MinHeader || size_t(pointer) + 4 > original_len))
    return Icmp40Status::bad_pointer;
  out->code = p[1];
  out->pointer = pointer;
  out->original = p + kIcmp40Header;
  out->original_len = original_len;
  out->has_spi = pointer != 0;
  out->spi = pointer ? load32(out->original + pointer) : 0;
  return Icmp40Status::ok;
}

}  // namespace mipsec
