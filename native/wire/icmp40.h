// ICMP Security Failures, type 40 (RFC 2521, spec/wire-formats.md §7); mirrors src/wire/icmp40.ts.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mipsec {

enum class Icmp40Status : uint8_t { ok, truncated, bad_type, bad_checksum, bad_code, bad_pointer };
const char* icmp40_status_name(Icmp40Status s);

struct Icmp40View {
  uint8_t code;
  uint16_t pointer;  // offset of the offending SPI within the quoted headers, 0 if none
  const uint8_t* original;  // quoted headers
  size_t original_len;
  bool has_spi;
  uint32_t spi;
};

// Checks: 8-byte header, type 40, checksum, code 0..5, a quoted IPv4 header (20 bytes), and a pointer
// that is 0 or names 4 quoted bytes behind that header.
Icmp40Status icmp40_parse(const uint8_t* p, size_t len, Icmp40View* out);

}  // namespace mipsec
