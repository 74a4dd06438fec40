#include "crypto/hmac.h"
#include "crypto/evp.h"
#include <openssl/core_names.h>
#include <openssl/params.h>

namespace mipsec {

HmacSha256::~HmacSha256() { EVP_MAC_CTX_free(ctx_); }

bool HmacSha256::init(const uint8_t* key, size_t key_len) {
  EVP_MAC* mac = algorithms().hmac;
  if (!mac) return false;
  EVP_MAC_CTX_free(ctx_);
  ctx_ = EVP_MAC_CTX_new(mac);
  if (!ctx_) return false;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  return EVP_MAC_init(ctx_, key, key_len, params) == 1;
}

bool HmacSha256::begin() { return EVP_MAC_init(ctx_, nullptr, 0, nullptr) == 1; }

bool HmacSha256::update(const uint8_t* data, size_t len) { return len == 0 || EVP_MAC_update(ctx_, data, len) == 1; }

bool HmacSha256::finish(uint8_t* out32) {
  size_t out_len = 0;
  return EVP_MAC_final(ctx_, out32, &out_len, kSha256Bytes) == 1 && out_len == kSha256Bytes;
}

}  // namespace mipsec
