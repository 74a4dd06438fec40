#include "crypto/packet_keys.h"
#include <cstring>
#include <openssl/crypto.h>
#include "crypto/evp.h"
#include "crypto/keywrap.h"

namespace mipsec {

namespace {

constexpr uint8_t kPurposeCrypt = 0x00, kPurposeMac = 0x01;

// The last `len` bytes of BLAKE2b-512(kp | alg | purpose); the full hash is wiped.
bool low_order_hash(const uint8_t* kp, uint8_t alg, uint8_t purpose, size_t len, uint8_t* out) {
  uint8_t input[kPacketKeyBytes + 2];
  std::memcpy(input, kp, kPacketKeyBytes);
  input[kPacketKeyBytes] = alg;
  input[kPacketKeyBytes + 1] = purpose;
  uint8_t hash[kTrafficKeyMaxBytes];
  unsigned int hash_len = 0;
  const bool ok = EVP_Digest(input, sizeof input, hash, &hash_len, algorithms().blake2b512, nullptr) == 1 &&
                  hash_len == sizeof hash;
  if (ok) std::memcpy(out, hash + sizeof hash - len, len);
  OPENSSL_cleanse(input, sizeof input);
  OPENSSL_cleanse(hash, sizeof hash);
  return ok;
}

}  // namespace

bool skip_packet_keys(const uint8_t* kijn, const uint8_t* wrapped, uint8_t crypt_alg, size_t crypt_len, uint8_t mac_alg,
                      size_t mac_len, uint8_t* out) {
  if (crypt_len > kTrafficKeyMaxBytes || mac_len > kTrafficKeyMaxBytes || !algorithms().blake2b512) return false;
  uint8_t* crypt = out + kPacketKeyBytes;
  uint8_t* mac = crypt + crypt_len;
  const bool ok = key_unwrap(kijn, wrapped, kWrappedPacketKeyBytes, out) &&
                  (crypt_len == 0 || low_order_hash(out, crypt_alg, kPurposeCrypt, crypt_len, crypt)) &&
                  (mac_len == 0 || low_order_hash(out, mac_alg, kPurposeMac, mac_len, mac));
  if (!ok) OPENSSL_cleanse(out, kPacketKeyBytes + crypt_len + mac_len);
  return ok;
}

}  // namespace mipsec
