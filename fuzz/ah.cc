// AH parser (native/wire/ah) for both MAC algorithms, and the SPI peek of the inbound lookup.
#include <cstddef>
#include <cstdint>
#include "common.h"
#include "wire/ah.h"

using namespace mipsec;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint32_t spi;
  if (ah_peek_spi(data, size, &spi) == R_NONE && size < 8) fuzz::finding("ah_peek_spi read past the buffer");
  for (MacAlg alg : {MacAlg::gmac_aes128, MacAlg::hmac_sha256_128}) {
    AhView v;
    if (ah_parse(data, size, alg, &v) != R_NONE) continue;
    if (size < ah_len(alg)) fuzz::finding("ah_parse accepted a truncated AH");
    if (data[1] != ah_len(alg) / 4 - 2) fuzz::finding("ah_parse accepted a wrong payload length");
  }
  return 0;
}
