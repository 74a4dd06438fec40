// IPv4 header (RFC 791): parse with every check of docs/engine.md §5, checksums (RFC 1071, RFC 1624), build.
#pragma once
#include "engine/abi.h"
#include "wire/bytes.h"

namespace mipsec {

constexpr size_t kIpv4MinHeader = 20;
constexpr uint16_t kIpv4Df = 0x4000;
constexpr uint16_t kIpv4Mf = 0x2000;
constexpr uint16_t kIpv4OffsetMask = 0x1fff;

struct Ipv4View {
  size_t header_len;  // 4·IHL
  size_t total_len;  // from the header; bytes beyond it are not part of the datagram
  uint8_t tos;
  uint16_t id;
  uint16_t flags_frag;
  uint8_t ttl;
  uint8_t proto;
  uint32_t src, dst;
};

enum class FragmentCheck { reject, allow };

// Parses the header at p..p+avail. Checks version, IHL, total length, checksum and, unless allowed, fragments.
Reason ipv4_parse(const uint8_t* p, size_t avail, Ipv4View* out, FragmentCheck frag = FragmentCheck::reject);

// One's-complement sum of 16-bit big-endian words (odd tail padded with zero), folded, not complemented.
uint16_t ones_complement_sum(const uint8_t* p, size_t len, uint32_t initial = 0);
// The Internet checksum of p (RFC 1071): complement of the folded sum.
inline uint16_t internet_checksum(const uint8_t* p, size_t len) { return uint16_t(~ones_complement_sum(p, len)); }
// RFC 1624 eqn. 3: checksum after one 16-bit word changed from old_word to new_word.
uint16_t checksum_update(uint16_t checksum, uint16_t old_word, uint16_t new_word);

struct OuterHeader {
  uint8_t tos;
  uint16_t id;
  uint16_t df;  // kIpv4Df or 0
  uint8_t ttl;
  uint8_t proto;
  uint32_t src, dst;
};
// Writes a 20-byte header (IHL 5) with total length and checksum.
void ipv4_build(uint8_t* p, const OuterHeader& h, size_t total_len);

// RFC 2003 §6.2 on p..p+len (the I/O loop's home tunnel peel, an End-End SA's selectors tunnel; src/wire/ipip.ts
// wholeIpipInner): a whole IPv4 datagram (version 4, IHL >= 5, not a fragment, total length within len) of protocol
// 4 whose inner datagram has a whole header of version 4, a total length within the outer one and TTL not 0. Returns
// the inner datagram's offset, 0 when it is not one. The outer checksum is not checked (a layer authenticated it).
size_t ipip_whole_inner(const uint8_t* p, size_t len);

}  // namespace mipsec
