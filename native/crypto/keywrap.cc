#include "crypto/keywrap.h"
#include "crypto/evp.h"
#include <climits>
#include <openssl/evp.h>

namespace mipsec {

static bool run_wrap(int encrypt, const uint8_t* kek, const uint8_t* in, size_t in_len, uint8_t* out, size_t expect) {
  EVP_CIPHER* cipher = algorithms().aes256wrap;
  if (!cipher || in_len % 8 != 0 || in_len > INT_MAX) return false;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (!ctx) return false;
  EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  int len = 0, fin = 0;
  bool ok = EVP_CipherInit_ex(ctx, cipher, nullptr, kek, nullptr, encrypt) == 1 &&
            EVP_CipherUpdate(ctx, out, &len, in, int(in_len)) == 1 && EVP_CipherFinal_ex(ctx, out + len, &fin) == 1 &&
            size_t(len + fin) == expect;
  EVP_CIPHER_CTX_free(ctx);
  return ok;
}

bool key_wrap(const uint8_t* kek, const uint8_t* in, size_t in_len, uint8_t* out) {
  return in_len >= 16 && run_wrap(1, kek, in, in_len, out, in_len + kKeyWrapOverhead);
}

bool key_unwrap(const uint8_t* kek, const uint8_t* in, size_t in_len, uint8_t* out) {
  return in_len >= 24 && run_wrap(0, kek, in, in_len, out, in_len - kKeyWrapOverhead);
}

}  // namespace mipsec
