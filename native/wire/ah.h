// AH header (RFC 4302): next header, payload length, reserved, SPI, sequence, authentication data.
#pragma once
#include "engine/abi.h"
#include "wire/bytes.h"

namespace mipsec {

constexpr size_t kAhFixed = 12;
constexpr size_t kIcvBytes = 16;  // both MACs end in a 16-byte tag
constexpr size_t kGmacIvBytes = 8;  // AES-GMAC authentication data = IV(8) ‖ tag(16)

enum class MacAlg : uint8_t { none = 0, gmac_aes128 = 1, hmac_sha256_128 = 2 };

// AH length and where its tag sits, per algorithm.
inline size_t ah_len(MacAlg a) { return a == MacAlg::gmac_aes128 ? 36 : 28; }
inline size_t ah_tag_offset(MacAlg a) { return a == MacAlg::gmac_aes128 ? kAhFixed + kGmacIvBytes : kAhFixed; }

struct AhView {
  uint8_t next;
  uint32_t spi;
  uint32_t seq;
};

// The SPI sits 4 bytes in; a lookup needs 8 bytes.
Reason ah_peek_spi(const uint8_t* p, size_t avail, uint32_t* spi);
// Parses an AH of algorithm alg: payload length must match it, reserved must be 0.
Reason ah_parse(const uint8_t* p, size_t avail, MacAlg alg, AhView* out);
// Writes the AH header with the tag (and GMAC IV) left for the caller.
void ah_build(uint8_t* p, MacAlg alg, uint8_t next, uint32_t spi, uint32_t seq);

}  // namespace mipsec
