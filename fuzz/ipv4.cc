// IPv4 parser (native/wire/ipv4): every check of docs/engine.md §5 on hostile bytes, both fragment modes.
#include <cstddef>
#include <cstdint>
#include "common.h"
#include "wire/ipv4.h"

using namespace mipsec;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (FragmentCheck frag : {FragmentCheck::reject, FragmentCheck::allow}) {
    Ipv4View v;
    const Reason r = ipv4_parse(data, size, &v, frag);
    if (r != R_NONE) continue;
    if (v.header_len < kIpv4MinHeader || v.header_len > v.total_len || v.total_len > size)
      fuzz::finding("ipv4_parse accepted lengths outside the buffer");
    if (internet_checksum(data, v.header_len) != 0) fuzz::finding("ipv4_parse accepted a bad checksum");
    if (frag == FragmentCheck::reject && (v.flags_frag & (kIpv4Mf | kIpv4OffsetMask)))
      fuzz::finding("ipv4_parse accepted a fragment");
  }
  // RFC 1624: updating one word incrementally gives the same checksum as recomputing it.
  if (size >= kIpv4MinHeader) {
    uint8_t h[kIpv4MinHeader];
    for (size_t i = 0; i < kIpv4MinHeader; i++) h[i] = data[i];
    h[10] = h[11] = 0;
    const uint16_t before = internet_checksum(h, kIpv4MinHeader);
    const uint16_t old_word = load16(h + 8);
    const uint16_t new_word = uint16_t(old_word - 0x0100);  // TTL decrement
    store16(h + 8, new_word);
    const uint16_t updated = checksum_update(before, old_word, new_word);
    const uint16_t fresh = internet_checksum(h, kIpv4MinHeader);
    // RFC 1624 §3: both encodings of zero (0x0000 and 0xffff) are the same checksum.
    if (updated != fresh && !((updated == 0 || updated == 0xffff) && (fresh == 0 || fresh == 0xffff)))
      fuzz::finding("checksum_update disagrees with a fresh checksum");
  }
  return 0;
}
