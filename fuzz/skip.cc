// SKIP header parser (native/wire/skip) and the inbound key tuple built from it.
#include <cstddef>
#include <cstdint>
#include "common.h"
#include "wire/skip.h"

using namespace mipsec;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  SkipView v;
  if (skip_parse(data, size, &v) != R_NONE) return 0;
  if (v.len > size || v.len < kSkipFixed + kWrappedKpBytes) fuzz::finding("skip_parse length outside the buffer");
  if (v.wrapped_kp < data || v.wrapped_kp + kWrappedKpBytes > data + size)
    fuzz::finding("skip_parse wrapped Kp outside the buffer");
  const SkipKey k = skip_key(v, 0x01020304);
  const SkipKey same = skip_key(v, 0x01020304);
  if (!(k == same) || SkipKeyHash{}(k) != SkipKeyHash{}(same)) fuzz::finding("skip key not equal to itself");
  return 0;
}
