#include "crypto/evp.h"

namespace mipsec {

const Algorithms& algorithms() {
  static const Algorithms algs = {
      EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr),  EVP_CIPHER_fetch(nullptr, "AES-128-ECB", nullptr),
      EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr),  EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr),
      EVP_CIPHER_fetch(nullptr, "AES-256-WRAP", nullptr), EVP_MAC_fetch(nullptr, "HMAC", nullptr),
      EVP_MD_fetch(nullptr, "BLAKE2B-512", nullptr),      EVP_MD_fetch(nullptr, "SHA2-256", nullptr),
  };
  return algs;
}

}  // namespace mipsec
