// IPv4 fragmentation (RFC 791 §3.2), as src/wire/fragment.ts fragmentIpv4 does it: what the I/O loop does to a
// datagram without DF whose sealed packet the link refused, before it seals the pieces one by one (docs/engine.md
// §9). The datagram may itself be a fragment: its pieces keep its offset and, on the last, its MF.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include "wire/ipv4.h"

namespace mipsec {

// The header later fragments carry (RFC 791 §3.1: the fixed 20 bytes and the options with the copied flag, padded to
// 32 bits with end-of-options) written to out (60 bytes); returns its length.
size_t ipv4_copied_header(const uint8_t* header, size_t header_len, uint8_t* out);

// Splits the datagram at p (len bytes available) into fragments of at most mtu bytes; the first keeps every option.
// For each, out(length) returns where to write it (or null to stop). Returns the number written, or -1 when it cannot
// be split: not a parsable IPv4 datagram, DF set, or an mtu too small for a header and 8 bytes. One that fits is
// written whole (1).
template <class Out>
int ipv4_fragment(const uint8_t* p, size_t len, size_t mtu, Out out) {
  Ipv4View ip;
  if (ipv4_parse(p, len, &ip, FragmentCheck::allow) != R_NONE) return -1;
  if (ip.total_len <= mtu) {
    uint8_t* whole = out(ip.total_len);
    if (!whole) return 0;
    std::memcpy(whole, p, ip.total_len);
    return 1;
  }
  if (ip.flags_frag & kIpv4Df) return -1;
  uint8_t later[60];
  const size_t later_len = ipv4_copied_header(p, ip.header_len, later);
  if (mtu < (ip.header_len > later_len ? ip.header_len : later_len) + 8) return -1;
  const uint8_t* payload = p + ip.header_len;
  const size_t payload_len = ip.total_len - ip.header_len;
  const size_t base = size_t(ip.flags_frag & kIpv4OffsetMask) * 8;
  const bool last_more = ip.flags_frag & kIpv4Mf;
  int n = 0;
  for (size_t at = 0; at < payload_len; n++) {
    const uint8_t* header = at == 0 ? p : later;
    const size_t header_len = at == 0 ? ip.header_len : later_len;
    const size_t room = (mtu - header_len) & ~size_t(7);
    const size_t size = room < payload_len - at ? room : payload_len - at;
    const bool more = at + size < payload_len || last_more;
    uint8_t* f = out(header_len + size);
    if (!f) return n;
    std::memcpy(f, header, header_len);
    std::memcpy(f + header_len, payload + at, size);
    f[0] = uint8_t((f[0] & 0xf0) | (header_len / 4));
    store16(f + 2, uint16_t(header_len + size));
    store16(f + 6, uint16_t((more ? kIpv4Mf : 0) | ((base + at) / 8)));
    store16(f + 10, 0);
    store16(f + 10, internet_checksum(f, header_len));
    at += size;
  }
  return n;
}

}  // namespace mipsec
