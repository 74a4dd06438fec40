// One packet inside its batch slot, and what the engine decided about it (docs/engine.md §1, §3).
#pragma once
#include <cstddef>
#include <cstdint>
#include "engine/abi.h"

namespace mipsec {

struct Packet {
  uint8_t* lo;  // slot start: prepending may go down to here
  uint8_t* hi;  // slot end: the packet may grow up to here
  uint8_t* data;  // current packet
  size_t len;
  size_t headroom() const { return size_t(data - lo); }
};

struct Outcome {
  Verdict verdict;
  Reason reason;
  uint32_t sa;  // the SA that decided the packet, 0 if none
  uint32_t nexthop;  // FORWARD only
};

inline Outcome fail(Reason r, uint32_t sa = 0) { return {verdict_for(r), r, sa, 0}; }
// A PUNT for a reason that is otherwise a drop (R_SELECTOR under selectorMiss 'punt' or { outbound }).
inline Outcome punt(Reason r, uint32_t sa = 0) { return {V_PUNT, r, sa, 0}; }
inline Outcome forward(uint32_t sa, uint32_t nexthop) { return {V_FORWARD, R_NONE, sa, nexthop}; }
// A FORWARD whose sealing brought out SA `sa` to its soft_packets: the packet goes out, the reason tells of it.
inline Outcome rekey_due(uint32_t sa, uint32_t nexthop) { return {V_FORWARD, R_REKEY_DUE, sa, nexthop}; }
inline Outcome deliver(uint32_t sa) { return {V_DELIVER, R_NONE, sa, 0}; }

constexpr size_t kMaxIpTotal = 65535;

}  // namespace mipsec
