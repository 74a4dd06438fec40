// The engine ABI shared with JS (docs/engine.md §1-§3). Each list below is the only place its numbers are written on
// the native side; the addon exports them (native/node/abi.cc, binding.abi) and test/engine/abi.test.ts fails when
// src/engine/types.ts (the TS reference engine's copy, usable without the addon) differs.
#pragma once
#include <cstdint>

namespace mipsec {

// X(enumerator, value): JS names an op, verdict or reason by its enumerator without the prefix (reasons lower-cased).
#define MIPSEC_OPS(X) \
  X(OP_ENCAP, 1)      \
  X(OP_WRAP, 2)       \
  X(OP_INBOUND, 3)    \
  X(OP_IPIP_ENCAP, 4) \
  X(OP_IPIP_DECAP, 5) \
  X(OP_OUTBOUND, 6)

#define MIPSEC_VERDICTS(X) \
  X(V_NONE, 0)             \
  X(V_FORWARD, 1)          \
  X(V_DELIVER, 2)          \
  X(V_PUNT, 3)             \
  X(V_DROP, 4)

// R_REKEY_DUE is not a failure: a FORWARD whose sealing brought an out SA to its soft_packets (docs/engine.md §4)
// says so with this reason and that SA, so the control plane installs the next key while this one keeps sealing.
#define MIPSEC_REASONS(X)  \
  X(R_NONE, 0)             \
  X(R_BAD_DESCRIPTOR, 1)   \
  X(R_NO_ROOM, 2)          \
  X(R_TRUNCATED, 3)        \
  X(R_BAD_IP_VERSION, 4)   \
  X(R_BAD_IHL, 5)          \
  X(R_BAD_TOTAL_LENGTH, 6) \
  X(R_BAD_IP_CHECKSUM, 7)  \
  X(R_FRAGMENT, 8)         \
  X(R_TTL_EXPIRED, 9)      \
  X(R_BAD_SKIP, 10)        \
  X(R_UNKNOWN_NSID, 11)    \
  X(R_UNKNOWN_ALG, 12)     \
  X(R_BAD_AH, 13)          \
  X(R_BAD_ESP, 14)         \
  X(R_BAD_SPI, 15)         \
  X(R_UNKNOWN_KEY, 16)     \
  X(R_AUTH, 17)            \
  X(R_REPLAY, 18)          \
  X(R_SEQ_EXHAUSTED, 19)   \
  X(R_NO_SA, 20)           \
  X(R_NO_ROUTE, 21)        \
  X(R_BAD_NEXT_HEADER, 22) \
  X(R_BAD_DST_MKID, 23)    \
  X(R_TOO_MANY_LAYERS, 24) \
  X(R_NOT_IPSEC, 25)       \
  X(R_DUMMY, 26)           \
  X(R_SA_MISMATCH, 27)     \
  X(R_LOOP, 28)            \
  X(R_NO_POLICY, 29)       \
  X(R_NEXTHOP_PLAIN, 30)   \
  X(R_RELAY_DENIED, 31)    \
  X(R_SELECTOR, 32)        \
  X(R_POLICY_PUNT, 33)     \
  X(R_POLICY_DROP, 34)     \
  X(R_TTL_EXCEEDED, 35)    \
  X(R_DELIVER_LOCAL, 36)   \
  X(R_REKEY, 37)           \
  X(R_REKEY_DUE, 38)       \
  X(R_UNTRUSTED_TUNNEL, 39)

#define MIPSEC_ENUMERATOR(name, value) name = value,
enum Op : uint32_t { MIPSEC_OPS(MIPSEC_ENUMERATOR) };
enum Verdict : uint8_t { MIPSEC_VERDICTS(MIPSEC_ENUMERATOR) };
enum Reason : uint8_t { MIPSEC_REASONS(MIPSEC_ENUMERATOR) };
constexpr Reason kLastReason = R_UNTRUSTED_TUNNEL;

// Punts are the reasons the control plane resolves; every other failure is a drop (R_SELECTOR is punted
// instead by an SA with selectorMiss 'punt' or { outbound }, which says so explicitly).
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
#define MIPSEC_DESC_WORDS(X) \
  X(D_OP, 0)                 \
  X(D_ARG0, 1)               \
  X(D_ARG1, 2)               \
  X(D_OFFSET, 3)             \
  X(D_LENGTH, 4)             \
  X(D_VERDICT, 5)            \
  X(D_SA, 6)                 \
  X(D_NEXTHOP, 7)
enum DescWord { MIPSEC_DESC_WORDS(MIPSEC_ENUMERATOR) };

constexpr int kMaxLayers = 8;
// An outbound policy's End-End layer plus at most this many next-hop layers: INBOUND can peel them all.
constexpr int kMaxPolicyWraps = kMaxLayers - 1;
// Source prefixes one outbound policy may list.
constexpr int kMaxPolicySrc = 32;

// Outbound policy actions as the binding passes them (src/engine/policy.ts PolicyActionCode, docs/engine.md §4.2).
#define MIPSEC_POLICY_ACTIONS(X) \
  X(PA_PROTECT, 1)               \
  X(PA_BYPASS, 2)                \
  X(PA_PASS, 3)                  \
  X(PA_PUNT, 4)                  \
  X(PA_DROP, 5)                  \
  X(PA_INBOUND, 6)               \
  X(PA_TUNNEL, 7)                \
  X(PA_DETUNNEL, 8)
enum PolicyAction : uint8_t { MIPSEC_POLICY_ACTIONS(MIPSEC_ENUMERATOR) };
constexpr PolicyAction kLastPolicyAction = PA_DETUNNEL;
constexpr const char* kPolicyActionRange =
    "action must be 1..8 (protect, bypass, pass, punt, drop, inbound, tunnel, detunnel)";

}  // namespace mipsec
