// AES-256 key wrap (RFC 3394) for SKIP packet keys: Kp (32 bytes) under Kijn → 40 bytes.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mipsec {

constexpr size_t kKekBytes = 32;
constexpr size_t kKeyWrapOverhead = 8;

// in_len a multiple of 8, at least 16; out has in_len + 8 bytes.
bool key_wrap(const uint8_t* kek, const uint8_t* in, size_t in_len, uint8_t* out);
// in_len a multiple of 8, at least 24; out has in_len - 8 bytes. False if the integrity check fails.
bool key_unwrap(const uint8_t* kek, const uint8_t* in, size_t in_len, uint8_t* out);

}  // namespace mipsec
