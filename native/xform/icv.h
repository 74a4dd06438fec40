// AH ICV input (RFC 4302 §3.3.3 and App. A, docs/engine.md §6-§7) and the AH tag over it.
#pragma once
#include "sa/sa.h"
#include "xform/packet.h"

namespace mipsec {

// How many leading bytes of the protected datagram d an AH covers: all of it (full), or its headers up to and
// including the first 16 bytes of an ESP header (headers; all of it when the walk reaches no ESP) (§7).
Reason covered_len(const uint8_t* d, size_t len, Coverage coverage, size_t* out);

struct IcvInput {
  const uint8_t* ip;  // outer IPv4 header, ip_len bytes (options included)
  size_t ip_len;
  const uint8_t* skip;  // SKIP header or null
  size_t skip_len;
  const uint8_t* ah;  // the AH header; its tag bytes are never read
  const uint8_t* payload;  // the covered bytes after AH
  size_t payload_len;
};

// The 16-byte AH tag of sa's MAC (keys in c) over the ICV input.
bool ah_tag(const Sa& sa, SaCrypto& c, const IcvInput& in, uint8_t* tag);

}  // namespace mipsec
