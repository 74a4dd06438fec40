#include "sa/table.h"
#include <algorithm>
#include <unordered_map>

namespace mipsec {

static uint64_t spi_key(uint8_t proto, uint32_t spi) { return uint64_t(proto) << 32 | spi; }

void PrefixIndex::build(const std::vector<Entry>& entries) {
  levels_.clear();
  for (int length = 32; length >= 0; length--) {
    std::unordered_map<uint32_t, uint32_t> level;  // a later duplicate prefix wins
    for (const Entry& e : entries)
      if (e.length == length) level[e.network] = e.value;
    if (level.empty()) continue;
    Level l{uint8_t(length), length == 0 ? 0 : ~uint32_t(0) << (32 - length), {}};
    l.value_by_network.build(std::vector<std::pair<uint32_t, uint32_t>>(level.begin(), level.end()));
    levels_.push_back(std::move(l));
  }
}

const uint32_t* PrefixIndex::find(uint32_t dst) const {
  for (const Level& level : levels_)
    if (const uint32_t* value = level.value_by_network.find(dst & level.mask)) return value;
  return nullptr;
}

Sa* Tables::find(uint32_t id) const {
  const std::shared_ptr<Sa>* sa = by_id.find(id);
  return sa ? sa->get() : nullptr;
}

Sa* Tables::find_spi(uint8_t proto, uint32_t spi) const {
  Sa* const* sa = by_spi.find(spi_key(proto, spi));
  return sa ? *sa : nullptr;
}

Sa* Tables::find_skip(const SkipKey& key) const {
  Sa* const* sa = by_skip.find(key);
  return sa ? *sa : nullptr;
}

bool Tables::route(uint32_t dst, uint32_t* sa) const {
  const uint32_t* via = routes->index.find(dst);
  if (via) *sa = *via;
  return via != nullptr;
}

const PolicyEntry* Tables::policy(uint32_t table, uint32_t src, uint32_t dst, uint8_t proto) const {
  return policies->find(table, src, dst, proto);
}

void PolicyTable::build() {
  order.resize(policies.size());
  for (uint32_t i = 0; i < order.size(); i++) order[i] = i;
  // Grouped by table, then longest prefix first, then network; stable, so each group keeps the given order.
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const PolicyEntry &x = policies[a], &y = policies[b];
    if (x.table != y.table) return x.table < y.table;
    if (x.length != y.length) return x.length > y.length;
    return x.network < y.network;
  });
  tables.clear();
  std::vector<std::pair<uint32_t, uint32_t>> table_ids;
  std::vector<std::pair<uint32_t, Span>> spans;
  auto close_level = [&](std::vector<Level>& levels) {
    if (spans.empty()) return;
    levels.back().by_network.build(spans);
    spans.clear();
  };
  for (uint32_t i = 0; i < order.size();) {
    const PolicyEntry& p = policies[order[i]];
    uint32_t j = i + 1;
    while (j < order.size() && policies[order[j]].table == p.table && policies[order[j]].length == p.length &&
           policies[order[j]].network == p.network)
      j++;
    const bool new_table = table_ids.empty() || table_ids.back().first != p.table;
    if (new_table) {
      if (!tables.empty()) close_level(tables.back());
      table_ids.emplace_back(p.table, uint32_t(tables.size()));
      tables.emplace_back();
    }
    std::vector<Level>& levels = tables.back();
    if (new_table || levels.back().length != p.length) {
      close_level(levels);
      levels.push_back(Level{p.length, p.length == 0 ? 0 : ~uint32_t(0) << (32 - p.length), {}});
    }
    spans.emplace_back(p.network, Span{i, j - i});
    i = j;
  }
  if (!tables.empty()) close_level(tables.back());
  table_index.build(table_ids);
}

const PolicyEntry* PolicyTable::find(uint32_t table, uint32_t src_addr, uint32_t dst, uint8_t proto) const {
  const uint32_t* t = table_index.find(table);
  if (!t) return nullptr;
  for (const Level& level : tables[*t]) {
    const Span* span = level.by_network.find(dst & level.mask);
    if (!span) continue;
    for (uint32_t k = span->first; k < span->first + span->count; k++) {
      const PolicyEntry& p = policies[order[k]];
      if (p.proto >= 0 && p.proto != proto) continue;
      if (p.src_count == 0) return &p;
      for (uint32_t s = p.src_first; s < p.src_first + p.src_count; s++)
        if (src[s].contains(src_addr)) return &p;
    }
  }
  return nullptr;
}

static bool prefix_ok(uint32_t network, uint8_t length) {
  return length <= 32 && (length == 32 || (length == 0 ? network == 0 : (network << length) == 0));
}

std::string check_policies(const std::vector<PolicyEntry>& policies, const std::vector<SelectorPrefix>& src) {
  std::unordered_map<std::string, size_t> seen;
  for (size_t i = 0; i < policies.size(); i++) {
    const PolicyEntry& p = policies[i];
    const std::string where = "policy " + std::to_string(i) + ": ";
    if (!prefix_ok(p.network, p.length)) return where + "prefix must be a.b.c.d/0..32 without host bits";
    if (p.action < PA_PROTECT || p.action > kLastPolicyAction) return where + kPolicyActionRange;
    if (p.action == PA_TUNNEL && p.tunnel_src == 0)
      return where + "tunnel.src must be the tunnel's outer source address (not 0.0.0.0) for action tunnel";
    if (p.action == PA_TUNNEL && p.tunnel_dst == 0)
      return where + "tunnel.dst must be the tunnel's exit address (not 0.0.0.0) for action tunnel";
    if (p.action != PA_TUNNEL && (p.tunnel_src != 0 || p.tunnel_dst != 0))
      return where + "tunnel applies to action tunnel only";
    // A reverse tunnel's end is IP-in-IP only: what else reaches the home agent's address is the control plane's.
    if (p.action == PA_DETUNNEL && p.proto != PROTO_IPIP) return where + "action detunnel needs proto 4 (IP-in-IP)";
    if (p.action == PA_PROTECT && p.sa == 0 && p.wraps == 0)
      return where + "sa must be an out SA id (1..2^32-1) for action protect (0 only with wrap: Next-hop layers alone)";
    if (p.action != PA_PROTECT && p.sa != 0) return where + "sa applies to action protect only (use 0)";
    if (p.action != PA_PROTECT && p.wraps != 0) return where + "wrap applies to action protect only";
    if (p.wraps > kMaxPolicyWraps) return where + "wrap: at most 7 wrap SAs";
    for (int w = 0; w < p.wraps; w++)
      if (p.wrap[w] == 0) return where + "wrap[" + std::to_string(w) + "] must be an SA id (1..2^32-1)";
    if (p.proto < -1 || p.proto > 255) return where + "proto must be an IPv4 protocol number 0..255";
    if (p.src_count > kMaxPolicySrc) return where + "src: at most 32 source prefixes";
    if (size_t(p.src_first) + p.src_count > src.size()) return where + "src: prefixes missing";
    // The (table, prefix, src set) key; no src and a set holding 0.0.0.0/0 are the same set.
    std::vector<uint64_t> set;
    bool any = p.src_count == 0;
    for (uint32_t s = 0; s < p.src_count; s++) {
      const SelectorPrefix& sp = src[p.src_first + s];
      if (!prefix_ok(sp.network, sp.length))
        return where + "src[" + std::to_string(s) + "] must be a.b.c.d/0..32 without host bits";
      any = any || sp.length == 0;
      set.push_back(uint64_t(sp.network) << 8 | sp.length);
    }
    if (any) set.assign(1, 0);
    std::sort(set.begin(), set.end());
    set.erase(std::unique(set.begin(), set.end()), set.end());
    std::string key = std::to_string(p.table) + "|" + std::to_string(p.network) + "/" + std::to_string(p.length) + "|" +
                      std::to_string(p.proto) + "|";
    for (uint64_t k : set) key += std::to_string(k) + ",";
    auto [at, fresh] = seen.emplace(std::move(key), i);
    if (!fresh)
      return where + "repeats the table, prefix and src of policy " + std::to_string(at->second) + "; keep one";
  }
  return {};
}

bool Tables::is_local(uint32_t addr) const { return std::binary_search(local->begin(), local->end(), addr); }

SaTable::SaTable() : current_(std::make_shared<Tables>()) {}

template <class Edit>
void SaTable::publish(Edit edit) {
  auto next = std::make_shared<Tables>(*std::atomic_load(&current_));
  edit(*next);
  std::atomic_store(&current_, std::shared_ptr<const Tables>(std::move(next)));
}

// The inbound lookup key of an SA: (protocol, SPI) of its first header in mode spi.
static uint64_t inbound_spi_key(const SaConfig& c) {
  return c.ah_alg != MacAlg::none ? spi_key(51, c.ah_spi) : spi_key(50, c.esp_spi);
}

std::string SaTable::install(const SaConfig& cfg, bool fresh_tuple) {
  if (const char* why = cfg.validate()) return why;
  std::lock_guard<std::mutex> hold(writer_);
  auto cur = std::atomic_load(&current_);
  const bool skip_in = cfg.direction == Direction::in && cfg.mode == Mode::skip;
  if (fresh_tuple && (!skip_in || unrecorded_)) return "a fresh key tuple is an inbound SKIP one, recorded";
  if (cur->by_id.find(cfg.id))
    return "sa.id " + std::to_string(cfg.id) +
           " is already installed (remove it first, or install the rekeyed SA under a new id)";
  auto sa = std::make_shared<Sa>(cfg);
  if (cfg.direction == Direction::in) {
    if (cfg.mode == Mode::spi) {
      if (Sa* const* other = cur->by_spi.find(inbound_spi_key(cfg)))
        return "inbound SPI already used by sa " + std::to_string((*other)->cfg.id) + " (pick another SPI)";
    } else {
      if (Sa* const* other = cur->by_skip.find(sa->skip_key))
        return "inbound SKIP key tuple already used by sa " + std::to_string((*other)->cfg.id) +
               " (the skipHeader must carry a fresh wrapped Kp)";
    }
  }
  if (skip_in) {
    if (fresh_tuple && tuples_.count(sa->skip_key)) return "the key tuple was held before";
    if (tuples_.size() < kMaxTuples || tuples_.count(sa->skip_key)) {
      tuples_[sa->skip_key] = sa->skip.n;
    } else {
      unrecorded_n_ = unrecorded_ ? std::max(unrecorded_n_, sa->skip.n) : sa->skip.n;
      unrecorded_ = true;
    }
  }
  publish([&](Tables& t) {
    t.by_id.insert(cfg.id, sa);
    if (cfg.direction == Direction::in) {
      if (cfg.mode == Mode::spi)
        t.by_spi.insert(inbound_spi_key(cfg), sa.get());
      else
        t.by_skip.insert(sa->skip_key, sa.get());
    }
  });
  return {};
}

bool SaTable::remove(uint32_t id) {
  std::lock_guard<std::mutex> hold(writer_);
  auto cur = std::atomic_load(&current_);
  Sa* sa = cur->find(id);
  if (!sa) return false;
  publish([&](Tables& t) {
    if (sa->cfg.direction == Direction::in) {
      if (sa->cfg.mode == Mode::spi)
        t.by_spi.erase(inbound_spi_key(sa->cfg));
      else
        t.by_skip.erase(sa->skip_key);
    }
    t.by_id.erase(id);
  });
  return true;
}

void SaTable::set_routes(const std::vector<RouteEntry>& routes) {
  std::lock_guard<std::mutex> hold(writer_);
  auto next = std::make_shared<RouteTable>();
  next->routes = routes;
  std::vector<PrefixIndex::Entry> entries;
  for (const RouteEntry& r : routes) entries.push_back({r.network, r.length, r.sa});
  next->index.build(entries);
  publish([&](Tables& t) { t.routes = std::move(next); });
}

std::string SaTable::set_policies(std::vector<PolicyEntry> policies, std::vector<SelectorPrefix> src) {
  std::string err = check_policies(policies, src);
  if (!err.empty()) return err;
  auto next = std::make_shared<PolicyTable>();
  next->policies = std::move(policies);
  next->src = std::move(src);
  next->build();
  std::lock_guard<std::mutex> hold(writer_);
  publish([&](Tables& t) { t.policies = std::move(next); });
  return {};
}

void SaTable::set_local(std::vector<uint32_t> addresses) {
  std::sort(addresses.begin(), addresses.end());
  std::lock_guard<std::mutex> hold(writer_);
  auto next = std::make_shared<const std::vector<uint32_t>>(std::move(addresses));
  publish([&](Tables& t) { t.local = std::move(next); });
}

void SaTable::forget_tuples_before(uint32_t n) {
  std::lock_guard<std::mutex> hold(writer_);
  for (auto it = tuples_.begin(); it != tuples_.end();) it = it->second < n ? tuples_.erase(it) : std::next(it);
  if (unrecorded_ && unrecorded_n_ < n) unrecorded_ = false;
}

void SaTable::set_successors(Successors* successors) {
  std::lock_guard<std::mutex> hold(writer_);
  successors_ = successors;
  publish([&](Tables& t) { t.successors = successors; });
}

void SaTable::clear() {
  std::lock_guard<std::mutex> hold(writer_);
  auto empty = std::make_shared<Tables>();
  empty->successors = successors_;
  std::atomic_store(&current_, std::shared_ptr<const Tables>(std::move(empty)));
}

}  // namespace mipsec
