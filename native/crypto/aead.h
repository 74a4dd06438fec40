// AEAD with the key schedule set once: AES-GCM (RFC 4106), ChaCha20-Poly1305 (RFC 7634), AES-GMAC (RFC 4543).
#pragma once
#include <cstddef>
#include <cstdint>
#include <openssl/evp.h>

namespace mipsec {

enum class AeadSuite : uint8_t { none = 0, aes128gcm = 1, aes256gcm = 2, chacha20poly1305 = 3 };

constexpr size_t kSaltBytes = 4;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;

// Cipher key bytes (salt excluded); 0 for none.
size_t aead_key_bytes(AeadSuite s);

// One EVP context with its key set once; per call only the nonce changes. Not thread-safe: one per thread.
class Aead {
 public:
  Aead() = default;
  ~Aead();
  Aead(const Aead&) = delete;
  Aead& operator=(const Aead&) = delete;

  // key: aead_key_bytes(suite) bytes. False if the cipher is unavailable.
  bool init(AeadSuite suite, const uint8_t* key);

  // In place: data (len bytes) becomes ciphertext; tag written.
  bool seal(const uint8_t* nonce, const uint8_t* aad, size_t aad_len, uint8_t* data, size_t len, uint8_t* tag);
  // In place: false if the tag does not verify (data is then garbage).
  bool open(const uint8_t* nonce, const uint8_t* aad, size_t aad_len, uint8_t* data, size_t len, const uint8_t* tag);

  // GMAC: authentication only, AAD fed in pieces between begin and finish.
  bool gmac_begin(const uint8_t* nonce);
  bool gmac_update(const uint8_t* data, size_t len);
  bool gmac_finish(uint8_t* tag);

 private:
  EVP_CIPHER_CTX* ctx_ = nullptr;
};

}  // namespace mipsec
