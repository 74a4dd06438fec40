// What an I/O loop hands back to its host's kernel instead of sending it itself (IoConfig.plain_by_kernel).
#pragma once
#include <cstddef>
#include <cstdint>
#include "wire/bytes.h"
#include "wire/ipv4.h"

namespace mipsec::io {

// Whether a FORWARD the engine left plain — SA 0, usual IP (no SKIP, AH, ESP or IP-in-IP layer), next hop its own
// destination: a `bypass` or `pass` — can go into the TUN for the kernel to carry by its routes, coalesced with the
// rest of its flow (one GSO super-packet on, where a raw socket sends each segment). The kernel takes one off the
// TTL as it forwards, so it is given that one back first (header checksum updated, RFC 1624): the datagram leaves
// as the policy decided. False, and the packet untouched, for anything else (TTL 255 included).
inline bool plain_for_kernel(uint8_t* p, size_t len, uint32_t sa, uint32_t nexthop) {
  if (sa != 0 || len < kIpv4MinHeader || load32(p + 16) != nexthop || p[8] == 0xff) return false;
  switch (p[9]) {
    case PROTO_IPIP:
    case PROTO_ESP:
    case PROTO_AH:
    case PROTO_SKIP:
      return false;
    default:
      break;
  }
  const uint16_t old_word = load16(p + 8);
  p[8] = uint8_t(p[8] + 1);
  store16(p + 10, checksum_update(load16(p + 10), old_word, uint16_t(old_word + 0x100)));
  return true;
}

}  // namespace mipsec::io
