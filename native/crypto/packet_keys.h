// SKIP's packet keys from the first packet of a new key (docs/skip-keying.md §2-3): Kp unwrapped from the SKIP
// header under Kijn, then E_kp and A_kp, each the low-order bytes of BLAKE2b-512(Kp | alg | purpose). One native
// step, so a gateway that sat idle pays for it once instead of for an unwrap and two hashes in JavaScript.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mipsec {

constexpr size_t kPacketKeyBytes = 32;  // Kp
constexpr size_t kWrappedPacketKeyBytes = 40;  // Kp under AES-256 key wrap
constexpr size_t kTrafficKeyMaxBytes = 64;  // one BLAKE2b-512 output

// out receives Kp (32) ‖ E_kp (crypt_len) ‖ A_kp (mac_len); a length of 0 leaves that key out. False when a length
// exceeds kTrafficKeyMaxBytes or BLAKE2b-512 is missing (out untouched), or when the wrapped Kp fails its integrity
// check (out zeroed).
bool skip_packet_keys(const uint8_t* kijn, const uint8_t* wrapped, uint8_t crypt_alg, size_t crypt_len, uint8_t mac_alg,
                      size_t mac_len, uint8_t* out);

}  // namespace mipsec
