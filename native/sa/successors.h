// Successor keys (docs/engine.md §4.3): a known peer's next SKIP packet key, keyed by the engine itself. SKIP rotates
// Kp by packet count and n by the hour, so a gateway pair keeps opening new keys; the control plane keyed the first
// one of each (peer, layer, outer addresses) and decided everything about it. For those it names here (the SA to
// inherit from, the peer's Kijn for the counters in the window), the engine unwraps a new Kp, derives its traffic
// keys and installs an SA that is the named one with new keys, header and id — so the new key's first packet goes on
// at once instead of waiting on the JavaScript thread. Anything else stays a punt: an unknown peer or layer, another
// algorithm, a counter outside the window, a tuple this engine held before (retired keys come back to the control
// plane, which refuses them), a tuple with a replay floor restored after a restart, a failed unwrap, no id left.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>
#include "sa/sa.h"
#include "wire/skip.h"

namespace mipsec {

class SaTable;
struct Tables;

constexpr size_t kKijnBytes = 32;
// Keyed successors waiting for take(): the id pool bounds them; this only bounds a control plane that never takes.
constexpr size_t kMaxSuccessorEvents = 4096;

struct SuccessorPeer {
  uint32_t address = 0;  // the outer source of its packets (SKIP source NSID 0)
  std::vector<uint32_t> templates;  // inbound SKIP SAs of this peer a new key may inherit from
  std::vector<std::pair<uint32_t, std::array<uint8_t, kKijnBytes>>> kijns;  // (n, Kijn) for the counters in window
};

struct SuccessorConfig {
  uint64_t valid_until = 0;  // unix seconds: the window moves then, and nothing is keyed until the next config
  uint32_t window_start = 0;  // the lowest n in the window: tuples recorded with a lower one are forgotten
  std::vector<uint32_t> ids;  // SA ids the engine may give, each once
  std::vector<uint64_t> blocked;  // 52-bit digests of (outer source, dotted ‖ SKIP header) not to key
  std::vector<SuccessorPeer> peers;
  ~SuccessorConfig();  // zeroes the Kijn copies
};

// One SA the engine keyed: the control plane adopts it (the header names the key tuple).
struct KeyedSuccessor {
  uint32_t id;
  uint32_t template_id;
  Role role;
  uint32_t src, dst;
  uint8_t skip_header[kSkipMaxHeader];
  size_t skip_len;
};

class Successors {
 public:
  explicit Successors(SaTable& table) : table_(table) {}
  // Replaces the whole configuration (the previous Kijn are zeroed); ids already given stay given.
  void configure(SuccessorConfig config);
  // The tables with a new SA for the SKIP layer at `header` (skip parsed from it) of a packet src → dst, when that
  // layer is a successor key; null otherwise (the caller punts as before). Thread-safe.
  std::shared_ptr<const Tables> key(const Tables& t, uint32_t src, uint32_t dst, const SkipView& skip,
                                    const uint8_t* header);
  std::vector<KeyedSuccessor> take();

 private:
  bool blocked(uint32_t src, const uint8_t* header, size_t len) const;

  SaTable& table_;
  std::mutex mu_;
  SuccessorConfig config_;  // under mu_
  std::unordered_map<uint32_t, size_t> peer_at_;  // address → index into config_.peers
  std::unordered_set<uint64_t> blocked_;
  size_t next_id_ = 0;  // into config_.ids
  std::vector<KeyedSuccessor> keyed_;  // under mu_
};

}  // namespace mipsec
