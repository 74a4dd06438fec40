// Big-endian loads and stores: the only way the data path reads multi-byte wire fields.
#pragma once
#include <cstdint>
#include <cstddef>

namespace mipsec {

inline uint16_t load16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
inline uint32_t load32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}
inline void store16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
inline void store32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}
inline void store64(uint8_t* p, uint64_t v) {
  store32(p, uint32_t(v >> 32));
  store32(p + 4, uint32_t(v));
}

// IP protocol numbers the engine handles.
enum IpProto : uint8_t { PROTO_IPIP = 4, PROTO_ESP = 50, PROTO_AH = 51, PROTO_SKIP = 57, PROTO_NONE = 59 };

}  // namespace mipsec
