// The SA table, next-hop routes and local addresses, published as one immutable snapshot: a batch takes the
// current snapshot once and keeps it (and every SA in it) alive until it ends, while the control plane
// installs, removes and rekeys by publishing a new one (docs/engine.md §4). A publish shares what it did
// not change with the previous snapshot: the SA maps are persistent tries (an install copies one path),
// routes, policies and local addresses are held by pointer (an SA change copies none of them).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>
#include "engine/abi.h"
#include "sa/flat_index.h"
#include "sa/hash_trie.h"
#include "sa/sa.h"

namespace mipsec {

class Successors;

struct RouteEntry {
  uint32_t network;
  uint8_t length;  // 0..32
  uint32_t sa;  // out nexthop SA to relay through, 0 = forward as is
};

// An outbound policy (docs/engine.md §4.2): in table `table`, destinations in network/length from a source in
// one of its src prefixes (none = any) get `action`; protect = ENCAP with `sa`, then WRAP with each of
// wrap[0..wraps) (innermost first); tunnel = RFC 2003 IP-in-IP from tunnel_src to tunnel_dst (both 0 otherwise).
struct PolicyEntry {
  uint32_t table = 0;
  uint32_t network = 0;
  uint8_t length = 0;
  PolicyAction action = PA_BYPASS;
  uint32_t sa = 0;
  uint8_t wraps = 0;
  uint32_t wrap[kMaxPolicyWraps] = {};
  uint32_t src_first = 0;  // into the table's src prefixes
  uint8_t src_count = 0;  // 0 = any source
  uint32_t tunnel_src = 0;  // tunnel: the outer source (the home agent)
  uint32_t tunnel_dst = 0;  // tunnel: the outer destination, the tunnel exit (the care-of address), the next hop
  int16_t proto = -1;  // the IPv4 protocol the datagram must carry (0..255); -1 = any
};

// Longest-prefix match over (network, length) → value, one flat hash level per prefix length in use.
class PrefixIndex {
 public:
  struct Entry {
    uint32_t network;
    uint8_t length;
    uint32_t value;
  };
  void build(const std::vector<Entry>& entries);  // a later duplicate prefix wins
  const uint32_t* find(uint32_t dst) const;

 private:
  struct Level {
    uint8_t length;
    uint32_t mask;
    FlatIndex<uint32_t, uint32_t, IntHash> value_by_network;
  };
  std::vector<Level> levels_;  // longest prefix first
};

// Routes with their longest-prefix index, built once per set_routes (and likewise for policies).
struct RouteTable {
  std::vector<RouteEntry> routes;
  PrefixIndex index;  // value: the route's SA
};
// Every policy table, indexed: table id → its prefix lengths in use (longest first) → network → the policies
// with that prefix in the order given. A lookup is one probe per length, then a walk of that prefix's policies.
struct PolicyTable {
  std::vector<PolicyEntry> policies;
  std::vector<SelectorPrefix> src;  // the policies' source prefixes
  struct Span {
    uint32_t first = 0, count = 0;  // into order
  };
  struct Level {
    uint8_t length;
    uint32_t mask;
    FlatIndex<uint32_t, Span, IntHash> by_network;
  };
  std::vector<std::vector<Level>> tables;
  FlatIndex<uint32_t, uint32_t, IntHash> table_index;  // table id → index into tables
  std::vector<uint32_t> order;  // policy indices grouped by (table, length, network), each group in given order

  // Builds the index over policies/src (already checked by check_policies).
  void build();
  const PolicyEntry* find(uint32_t table, uint32_t src_addr, uint32_t dst, uint8_t proto) const;
};

// Empty when the policies (with their src prefixes) form valid tables, else which policy and field is wrong:
// prefix lengths, host bits, action, sa and wraps only on protect, at most 7 wraps and 32 src prefixes, no
// repeated (table, prefix, src set).
std::string check_policies(const std::vector<PolicyEntry>& policies, const std::vector<SelectorPrefix>& src);

// One snapshot; copying it copies pointers only.
struct Tables {
  HashTrie<uint32_t, std::shared_ptr<Sa>, IntHash> by_id;
  HashTrie<uint64_t, Sa*, IntHash> by_spi;  // inbound, mode spi: protocol << 32 | SPI of the first header
  HashTrie<SkipKey, Sa*, SkipKeyHash> by_skip;  // inbound, mode skip
  std::shared_ptr<const RouteTable> routes = std::make_shared<RouteTable>();
  std::shared_ptr<const PolicyTable> policies = std::make_shared<PolicyTable>();
  std::shared_ptr<const std::vector<uint32_t>> local = std::make_shared<std::vector<uint32_t>>();  // sorted
  Successors* successors = nullptr;  // the engine's successor keying (sa/successors.h); null: none

  Sa* find(uint32_t id) const;
  Sa* find_spi(uint8_t proto, uint32_t spi) const;
  Sa* find_skip(const SkipKey& key) const;
  // Longest-prefix match; false when no route covers dst.
  bool route(uint32_t dst, uint32_t* sa) const;
  // The policy of `table` that decides a datagram src → dst (docs/engine.md §4.2); null when none does.
  const PolicyEntry* policy(uint32_t table, uint32_t src, uint32_t dst, uint8_t proto) const;
  bool is_local(uint32_t addr) const;
};

class SaTable {
 public:
  SaTable();
  std::shared_ptr<const Tables> snapshot() const { return std::atomic_load(&current_); }

  // Empty on success, else why (naming the field and the fix). A fresh tuple (a successor key) must be an inbound SKIP
  // key tuple this table never held: one the control plane retired goes back to it.
  std::string install(const SaConfig& cfg, bool fresh_tuple = false);
  // Forgets the inbound SKIP key tuples held before with a counter below n (outside the window: never keyed again).
  void forget_tuples_before(uint32_t n);
  void set_successors(Successors* successors);
  bool remove(uint32_t id);
  void set_routes(const std::vector<RouteEntry>& routes);
  // Empty on success, else check_policies' message (the tables stay as they were).
  std::string set_policies(std::vector<PolicyEntry> policies, std::vector<SelectorPrefix> src);
  void set_local(std::vector<uint32_t> addresses);
  void clear();

 private:
  // Copies the current tables (pointers and trie roots), lets edit change the copy, publishes it.
  template <class Edit>
  void publish(Edit edit);
  std::mutex writer_;
  std::shared_ptr<const Tables> current_;
  Successors* successors_ = nullptr;  // under writer_
  // Every inbound SKIP key tuple installed, with its n (under writer_). Bounded: past kMaxTuples a tuple is not
  // recorded, and no fresh tuple installs until the counters of those not recorded left the window.
  static constexpr size_t kMaxTuples = size_t(1) << 17;
  std::unordered_map<SkipKey, uint32_t, SkipKeyHash> tuples_;
  bool unrecorded_ = false;
  uint32_t unrecorded_n_ = 0;  // the highest n of a tuple not recorded
};

}  // namespace mipsec
