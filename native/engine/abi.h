// The engine ABI shared with JS: numbers mirrored exactly from src/engine/types.ts (docs/engine.md §1-§3).
#pragma once
#include <cstdint>

namespace mipsec {

enum Op : uint32_t { OP_ENCAP = 1, OP_WRAP = 2, OP_INBOUND = 3, OP_IPIP_ENCAP = 4, OP_IPIP_DECAP = 5, OP_OUTBOUND = 6 };

enum Verdict : uint8_t { V_NONE = 0, V_FORWARD = 1, V_DELIVER = 2, V_PUNT = 3, V_DROP = 4 };

enum Reason : uint8_t {
  R_NONE = 0,
  R_BAD_DESCRIPTOR = 1,
  R_NO_ROOM = 2,
  R_TRUNCATED = 3,
  R_BAD_IP_VERSION = 4,
  R_BAD_IHL = 5,
  R_BAD_TOTAL_LENGTH = 6,
  R_BAD_IP_CHECKSUM = 7,
  R_FRAGMENT = 8,
  R_TTL_EXPIRED = 9,
  R_BAD_SKIP = 10,
  R_UNKNOWN_NSID = 11,
  R_UNKNOWN_ALG = 12,
  R_BAD_AH = 13,
  R_BAD_ESP = 14,
  R_BAD_SPI = 15,
  R_UNKNOWN_KEY = 16,
  R_AUTH = 17,
  R_REPLAY = 18,
  R_SEQ_EXHAUSTED = 19,
  R_NO_SA = 20,
  R_NO_ROUTE = 21,
  R_BAD_NEXT_HEADER = 22,
  R_BAD_DST_MKID = 23,
  R_TOO_MANY_LAYERS = 24,
  R_NOT_IPSEC = 25,
  R_DUMMY = 26,
  R_SA_MISMATCH = 27,
  R_LOOP = 28,
  R_NO_POLICY = 29,
  R_NEXTHOP_PLAIN = 30,
  R_RELAY_DENIED = 31,
  R_SELECTOR = 32,
  R_POLICY_PUNT = 33,
  R_POLICY_DROP = 34,
  R_TTL_EXCEEDED = 35,
  R_DELIVER_LOCAL = 36,
  R_REKEY = 37,
  // Not a failure: a FORWARD whose sealing brought an out SA to its soft_packets (docs/engine.md §4) says so with
  // this reason and that SA, so the control plane installs the next key while this one keeps sealing.
  R_REKEY_DUE = 38,
};
constexpr Reason kLastReason = R_REKEY_DUE;

// Punts are the reasons the control plane resolves; every other failure is a drop (R_SELECTOR is punted
// instead by an SA with selectorMiss 'punt', which says so explicitly).
inline Verdict verdict_for(Reason r) {
  return (r == R_UNKNOWN_KEY || r == R_NO_ROUTE || r == R_NOT_IPSEC || r == R_NO_POLICY || r == R_NEXTHOP_PLAIN ||
          r == R_RELAY_DENIED || r == R_POLICY_PUNT || r == R_TTL_EXCEEDED || r == R_DELIVER_LOCAL || r == R_REKEY)
             ? V_PUNT
             : V_DROP;
}

// Reasons below the base, one counter per verdict from it.
constexpr int kCounterSlots = 64;
constexpr int kVerdictCounterBase = 48;
static_assert(kLastReason < kVerdictCounterBase && kVerdictCounterBase + V_DROP < kCounterSlots, "counter layout");

constexpr int kDescWords = 8;
enum DescWord { D_OP = 0, D_ARG0 = 1, D_ARG1 = 2, D_OFFSET = 3, D_LENGTH = 4, D_VERDICT = 5, D_SA = 6, D_NEXTHOP = 7 };

constexpr int kMaxLayers = 8;
// An outbound policy's End-End layer plus at most this many next-hop layers: INBOUND can peel them all.
constexpr int kMaxPolicyWraps = kMaxLayers - 1;
// Source prefixes one outbound policy may list.
constexpr int kMaxPolicySrc = 32;

// Outbound policy actions as the binding passes them (src/engine/policy.ts PolicyActionCode, docs/engine.md §4.2).
enum PolicyAction : uint8_t { PA_PROTECT = 1, PA_BYPASS = 2, PA_PASS = 3, PA_PUNT = 4, PA_DROP = 5, PA_INBOUND = 6 };

}  // namespace mipsec
