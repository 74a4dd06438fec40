#include "crypto/aead.h"
#include "crypto/evp.h"
#include <climits>
#include <openssl/core_names.h>
#include <openssl/params.h>

namespace mipsec {

size_t aead_key_bytes(AeadSuite s) {
  switch (s) {
    case AeadSuite::aes128gcm:
      return 16;
    case AeadSuite::aes256gcm:
      return 32;
    case AeadSuite::chacha20poly1305:
      return 32;
    default:
      return 0;
  }
}

static EVP_CIPHER* cipher_for(AeadSuite s) {
  const Algorithms& a = algorithms();
  switch (s) {
    case AeadSuite::aes128gcm:
      return a.aes128gcm;
    case AeadSuite::aes256gcm:
      return a.aes256gcm;
    case AeadSuite::chacha20poly1305:
      return a.chacha20poly1305;
    default:
      return nullptr;
  }
}

// The tag moves through one OSSL_PARAM directly: EVP_CIPHER_CTX_ctrl would build the same param per call.
static bool get_tag(EVP_CIPHER_CTX* ctx, uint8_t* tag) {
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, kTagBytes),
                         OSSL_PARAM_construct_end()};
  return EVP_CIPHER_CTX_get_params(ctx, params) == 1;
}

static bool set_tag(EVP_CIPHER_CTX* ctx, const uint8_t* tag) {
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, const_cast<uint8_t*>(tag), kTagBytes),
      OSSL_PARAM_construct_end()};
  return EVP_CIPHER_CTX_set_params(ctx, params) == 1;
}

Aead::~Aead() { EVP_CIPHER_CTX_free(ctx_); }  // frees and cleanses the key schedule

bool Aead::init(AeadSuite suite, const uint8_t* key) {
  EVP_CIPHER* cipher = cipher_for(suite);
  if (!cipher) return false;
  EVP_CIPHER_CTX_free(ctx_);
  ctx_ = EVP_CIPHER_CTX_new();
  if (!ctx_) return false;
  // The default nonce length of all three ciphers is 12 bytes, the ESP salt ‖ IV.
  return EVP_CipherInit_ex(ctx_, cipher, nullptr, key, nullptr, 1) == 1;
}

bool Aead::seal(const uint8_t* nonce, const uint8_t* aad, size_t aad_len, uint8_t* data, size_t len, uint8_t* tag) {
  if (len > INT_MAX || aad_len > INT_MAX) return false;
  int out = 0;
  if (EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce, 1) != 1) return false;
  if (aad_len && EVP_CipherUpdate(ctx_, nullptr, &out, aad, int(aad_len)) != 1) return false;
  if (len && EVP_CipherUpdate(ctx_, data, &out, data, int(len)) != 1) return false;
  if (EVP_CipherFinal_ex(ctx_, data + len, &out) != 1) return false;
  return get_tag(ctx_, tag);
}

bool Aead::open(const uint8_t* nonce, const uint8_t* aad, size_t aad_len, uint8_t* data, size_t len,
                const uint8_t* tag) {
  if (len > INT_MAX || aad_len > INT_MAX) return false;
  int out = 0;
  if (EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce, 0) != 1) return false;
  if (aad_len && EVP_CipherUpdate(ctx_, nullptr, &out, aad, int(aad_len)) != 1) return false;
  if (len && EVP_CipherUpdate(ctx_, data, &out, data, int(len)) != 1) return false;
  if (!set_tag(ctx_, tag)) return false;
  return EVP_CipherFinal_ex(ctx_, data + len, &out) == 1;
}

AesGmac::~AesGmac() {
  if (gcm_) CRYPTO_gcm128_release(gcm_);  // OPENSSL_clear_free: H and the tables are zeroed
  EVP_CIPHER_CTX_free(ecb_);  // frees and cleanses the key schedule
}

void AesGmac::encrypt_block(const unsigned char in[16], unsigned char out[16], const void* self) {
  const AesGmac* g = static_cast<const AesGmac*>(self);
  int n = 0;
  if (EVP_EncryptUpdate(g->ecb_, out, &n, in, 16) != 1 || n != 16) g->block_failed_ = true;
}

bool AesGmac::init(const uint8_t* key) {
  EVP_CIPHER* ecb = algorithms().aes128ecb;
  if (!ecb || ecb_) return false;
  ecb_ = EVP_CIPHER_CTX_new();
  if (!ecb_ || EVP_EncryptInit_ex(ecb_, ecb, nullptr, key, nullptr) != 1 || EVP_CIPHER_CTX_set_padding(ecb_, 0) != 1)
    return false;
  block_failed_ = false;
  gcm_ = CRYPTO_gcm128_new(this, encrypt_block);  // computes H = E(K, 0) through encrypt_block
  return gcm_ && !block_failed_;
}

bool AesGmac::begin(const uint8_t* nonce) {
  block_failed_ = false;
  CRYPTO_gcm128_setiv(gcm_, nonce, kNonceBytes);  // E(K, J0) through encrypt_block
  return !block_failed_;
}

bool AesGmac::update(const uint8_t* data, size_t len) { return len == 0 || CRYPTO_gcm128_aad(gcm_, data, len) == 0; }

bool AesGmac::finish(uint8_t* tag) {
  CRYPTO_gcm128_tag(gcm_, tag, kTagBytes);
  return !block_failed_;
}

}  // namespace mipsec
