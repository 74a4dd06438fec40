// ESP (RFC 4303) with an AEAD (RFC 4106 / 7634): SPI, sequence, IV(8), ciphertext, tag(16).
#pragma once
#include "engine/abi.h"
#include "wire/bytes.h"

namespace mipsec {

constexpr size_t kEspHeader = 16;  // SPI, sequence, 8-byte IV
constexpr size_t kEspTag = 16;
constexpr size_t kEspTrailer = 2;  // pad length, next header
constexpr size_t kEspMin = kEspHeader + kEspTrailer + kEspTag;

struct EspView {
  uint32_t spi;
  uint32_t seq;
  const uint8_t* iv;
  size_t ct_len;  // ciphertext bytes between the IV and the tag
};

Reason esp_peek_spi(const uint8_t* p, size_t avail, uint32_t* spi);
// Parses the ESP framing over exactly len bytes (the rest of the datagram).
Reason esp_parse(const uint8_t* p, size_t len, EspView* out);

// Padding 1, 2, 3 ... so that (payload + 2 + pad) ≡ 0 mod 4 (docs/engine.md §6).
inline size_t esp_pad_len(size_t payload_len) { return (4 - (payload_len + kEspTrailer) % 4) % 4; }
// Writes padding, pad length and next header after a payload of payload_len at p; returns trailer bytes.
size_t esp_write_trailer(uint8_t* payload_end, size_t pad, uint8_t next);
// Checks the decrypted trailer of plaintext pt..pt+len; returns the payload length and next header.
Reason esp_check_trailer(const uint8_t* pt, size_t len, size_t* payload_len, uint8_t* next);

}  // namespace mipsec
