#include "wire/fragment.h"

namespace mipsec {

size_t ipv4_copied_header(const uint8_t* header, size_t header_len, uint8_t* out) {
  std::memcpy(out, header, kIpv4MinHeader);
  size_t kept = kIpv4MinHeader;
  for (size_t i = kIpv4MinHeader; i < header_len;) {
    const uint8_t type = header[i];
    if (type == 0) break;  // end of options
    if (type == 1) {  // no-operation
      i++;
      continue;
    }
    if (i + 1 >= header_len) break;
    const size_t length = header[i + 1];
    if (length < 2 || i + length > header_len) break;
    if (type & 0x80) {
      std::memcpy(out + kept, header + i, length);
      kept += length;
    }
    i += length;
  }
  while (kept % 4) out[kept++] = 0;
  return kept;
}

}  // namespace mipsec
