// The SA table, next-hop routes and local addresses, published as one immutable snapshot: a batch takes the
// current snapshot once and keeps it (and every SA in it) alive until it ends, while the control plane
// installs, removes and rekeys by publishing a new one (docs/engine.md §4).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>
#include "sa/flat_index.h"
#include "sa/sa.h"

namespace mipsec {

struct RouteEntry {
  uint32_t network;
  uint8_t length;  // 0..32
  uint32_t sa;     // out nexthop SA to relay through, 0 = forward as is
};

// One snapshot. The maps are what the control plane edits (copied per publish); index() then builds the
// flat indexes the packet path reads.
struct Tables {
  std::unordered_map<uint32_t, std::shared_ptr<Sa>> by_id;
  std::unordered_map<uint64_t, Sa*> by_spi;  // inbound, mode spi: protocol << 32 | SPI of the first header
  std::unordered_map<SkipKey, Sa*, SkipKeyHash> by_skip;  // inbound, mode skip
  std::vector<RouteEntry> routes;
  std::vector<uint32_t> local;  // sorted

  void index();

  Sa* find(uint32_t id) const;
  Sa* find_spi(uint8_t proto, uint32_t spi) const;
  Sa* find_skip(const SkipKey& key) const;
  // Longest-prefix match; false when no route covers dst.
  bool route(uint32_t dst, uint32_t* sa) const;
  bool is_local(uint32_t addr) const;

 private:
  FlatIndex<uint32_t, Sa*, IntHash> id_index_;
  FlatIndex<uint64_t, Sa*, IntHash> spi_index_;
  FlatIndex<SkipKey, Sa*, SkipKeyHash> skip_index_;
  struct RouteLevel {
    uint8_t length;
    uint32_t mask;
    FlatIndex<uint32_t, uint32_t, IntHash> sa_by_network;
  };
  std::vector<RouteLevel> route_levels_;  // longest prefix first
};

class SaTable {
 public:
  SaTable();
  std::shared_ptr<const Tables> snapshot() const { return std::atomic_load(&current_); }

  // Empty on success, else why (naming the field and the fix).
  std::string install(const SaConfig& cfg);
  bool remove(uint32_t id);
  void set_routes(const std::vector<RouteEntry>& routes);
  void set_local(std::vector<uint32_t> addresses);
  void clear();

 private:
  // Copies the current tables, lets edit change the copy, publishes it.
  template <class Edit>
  void publish(Edit edit);
  std::mutex writer_;
  std::shared_ptr<const Tables> current_;
};

}  // namespace mipsec
