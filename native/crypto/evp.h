// Algorithms fetched once per process from the OpenSSL default provider (Node's bundled OpenSSL 3).
#pragma once
#include <openssl/evp.h>

namespace mipsec {

struct Algorithms {
  EVP_CIPHER* aes128gcm;
  EVP_CIPHER* aes128ecb;  // the block function of AesGmac
  EVP_CIPHER* aes256gcm;
  EVP_CIPHER* chacha20poly1305;
  EVP_CIPHER* aes256wrap;
  EVP_MAC* hmac;
  EVP_MD* blake2b512;  // SKIP's packet keys (crypto/packet_keys.h)
  EVP_MD* sha256;  // key tuple digests of the control plane (binding.crypto.sha256)
};

// Fetched on first use (thread-safe); null members mean the provider lacks an algorithm.
const Algorithms& algorithms();

}  // namespace mipsec
