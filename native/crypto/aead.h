// AEAD with the key schedule set once: AES-GCM (RFC 4106), ChaCha20-Poly1305 (RFC 7634), AES-GMAC (RFC 4543).
#pragma once
#include <cstddef>
#include <cstdint>
#include <openssl/evp.h>
#include <openssl/modes.h>

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

 private:
  EVP_CIPHER_CTX* ctx_ = nullptr;
};

// AES-128-GMAC (RFC 4543: GCM over AAD only) for AH, with H and the GHASH tables computed once.
//
// Why not an EVP AES-GCM context as for ESP: with OpenSSL 3.0 every nonce set queries the IV length
// and every tag read goes through OSSL_PARAM name matching, which cost more than the GHASH of a relayed
// packet's headers (a `headers` relay, two MACs, went from about 550 to about 320 ns per packet).
// Here GHASH is OpenSSL's own GCM mode code (<openssl/modes.h>; PCLMULQDQ when the CPU has it) and the
// one AES block per MAC, E(K, J0), runs through an EVP AES-128-ECB context, so AES stays the provider's
// constant-time implementation (AES-NI); EVP_EncryptUpdate on ECB touches no params.
// Not thread-safe: one per thread, like Aead.
class AesGmac {
 public:
  AesGmac() = default;
  ~AesGmac();  // cleanses H, the GHASH tables and the AES key schedule
  AesGmac(const AesGmac&) = delete;
  AesGmac& operator=(const AesGmac&) = delete;

  // key: 16 bytes (salt excluded). False if the cipher is unavailable or out of memory.
  bool init(const uint8_t* key);
  // One MAC: begin(nonce), update any number of times, finish.
  bool begin(const uint8_t* nonce);
  bool update(const uint8_t* data, size_t len);
  bool finish(uint8_t* tag);

 private:
  static void encrypt_block(const unsigned char in[16], unsigned char out[16], const void* self);

  EVP_CIPHER_CTX* ecb_ = nullptr;
  GCM128_CONTEXT* gcm_ = nullptr;
  mutable bool block_failed_ = false;  // set by encrypt_block (a void callback); fails the MAC in progress
};

}  // namespace mipsec
