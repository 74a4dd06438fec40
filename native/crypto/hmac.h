// HMAC-SHA-256 through EVP_MAC with the key set once (RFC 4868 truncates it to 128 bits for AH).
#pragma once
#include <cstddef>
#include <cstdint>
#include <openssl/evp.h>

namespace mipsec {

constexpr size_t kSha256Bytes = 32;

class HmacSha256 {
 public:
  HmacSha256() = default;
  ~HmacSha256();
  HmacSha256(const HmacSha256&) = delete;
  HmacSha256& operator=(const HmacSha256&) = delete;

  bool init(const uint8_t* key, size_t key_len);
  // Restarts with the stored key: EVP_MAC_init with a null key reuses it.
  bool begin();
  bool update(const uint8_t* data, size_t len);
  bool finish(uint8_t* out32);

 private:
  EVP_MAC_CTX* ctx_ = nullptr;
};

}  // namespace mipsec
