// SKIP header (IP protocol 57): docs/engine.md §6, spec/wire-formats.md §4; mirrors src/wire/skip.ts.
#pragma once
#include "engine/abi.h"
#include "wire/bytes.h"

namespace mipsec {

constexpr size_t kSkipFixed = 12;
constexpr size_t kWrappedKpBytes = 40;  // Kij alg 250: AES-256 key wrap of a 32-byte Kp
constexpr size_t kSkipMaxHeader = kSkipFixed + kWrappedKpBytes + 4 + 4;
constexpr uint8_t kSkipVersion = 1;
constexpr uint8_t kKijAes256Kw = 250;
constexpr uint32_t kSkipSpi = 1;

struct SkipView {
  size_t len;
  uint8_t src_nsid, dst_nsid, next;
  uint32_t n;
  uint8_t kij_alg, crypt_alg, mac_alg;
  const uint8_t* wrapped_kp;  // kWrappedKpBytes bytes
  uint32_t src_mkid, dst_mkid;  // 0 when the NSID is 0
};

// Parses at p..p+avail: version, NSIDs (0 or 1), algorithms (§6 table, comp 0), length.
Reason skip_parse(const uint8_t* p, size_t avail, SkipView* out);

// The inbound lookup key of docs/engine.md §4.1; fixed size so a lookup builds it on the stack.
struct SkipKey {
  uint8_t src_nsid;
  uint8_t kij_alg;
  uint32_t n;
  uint32_t src_id;  // source MKID, or the outer IPv4 source when the source NSID is 0
  uint8_t wrapped_kp[kWrappedKpBytes];
  bool operator==(const SkipKey& o) const;
};
struct SkipKeyHash {
  size_t operator()(const SkipKey& k) const;
};
SkipKey skip_key(const SkipView& v, uint32_t outer_src);

}  // namespace mipsec
