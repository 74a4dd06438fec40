// ICMP 40 Security Failures parser (native/wire/icmp40): the raw input, and the same bytes made
// type 40 with a valid checksum so the fuzzer reaches the code, length and pointer checks.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include "common.h"
#include "wire/icmp40.h"
#include "wire/ipv4.h"

using namespace mipsec;

namespace {

constexpr size_t kMaxLen = 512;

void check(const uint8_t* p, size_t len) {
  Icmp40View v;
  if (icmp40_parse(p, len, &v) != Icmp40Status::ok) return;
  if (len < 8 + 20) fuzz::finding("icmp40_parse accepted a message without a quoted IPv4 header");
  if (v.original != p + 8 || v.original_len != len - 8) fuzz::finding("icmp40_parse quoted the wrong bytes");
  if (v.code > 5) fuzz::finding("icmp40_parse accepted an unknown code");
  if (v.has_spi != (v.pointer != 0)) fuzz::finding("icmp40_parse: has_spi disagrees with the pointer");
  if (v.has_spi && size_t(v.pointer) + 4 > v.original_len)
    fuzz::finding("icmp40_parse: pointer past the quoted headers");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  check(data, size);
  if (size < 4 || size > kMaxLen) return 0;
  uint8_t fixed[kMaxLen];
  std::memcpy(fixed, data, size);
  fixed[0] = 40;
  fixed[2] = fixed[3] = 0;
  const uint16_t sum = internet_checksum(fixed, size);
  fixed[2] = uint8_t(sum >> 8);
  fixed[3] = uint8_t(sum);
  check(fixed, size);
  return 0;
}
