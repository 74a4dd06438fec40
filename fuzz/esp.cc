// ESP framing and trailer checks (native/wire/esp): the parts that run before and after the AEAD.
#include <cstddef>
#include <cstdint>
#include "common.h"
#include "wire/esp.h"

using fuzz::Bytes;

using namespace mipsec;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint32_t spi;
  if (esp_peek_spi(data, size, &spi) == R_NONE && size < 8) fuzz::finding("esp_peek_spi read past the buffer");
  EspView v;
  if (esp_parse(data, size, &v) == R_NONE) {
    if (v.iv != data + 8 || kEspHeader + v.ct_len + kEspTag != size)
      fuzz::finding("esp_parse framing does not add up to the packet");
  }
  // The same bytes as a decrypted plaintext: pad length, padding 1, 2, 3 ..., next header.
  size_t payload_len;
  uint8_t next;
  if (esp_check_trailer(data, size, &payload_len, &next) == R_NONE) {
    if (payload_len + kEspTrailer + data[size - 2] != size) fuzz::finding("esp_check_trailer payload length wrong");
    for (size_t i = 0; i < data[size - 2]; i++)
      if (data[payload_len + i] != uint8_t(i + 1)) fuzz::finding("esp_check_trailer accepted bad padding");
    // The writer must produce what the checker accepts.
    Bytes round(payload_len + 3 + kEspTrailer);
    const size_t pad = esp_pad_len(payload_len);
    const size_t trailer = esp_write_trailer(round.data() + payload_len, pad, next);
    size_t back_len;
    uint8_t back_next;
    if (esp_check_trailer(round.data(), payload_len + trailer, &back_len, &back_next) != R_NONE ||
        back_len != payload_len || back_next != next)
      fuzz::finding("esp_write_trailer output fails esp_check_trailer");
    if ((payload_len + trailer) % 4 != 0) fuzz::finding("esp trailer does not align to 4");
  }
  return 0;
}
