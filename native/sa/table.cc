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

const PolicyEntry* Tables::policy(uint32_t dst) const {
  const uint32_t* i = policies->index.find(dst);
  return i ? &policies->policies[*i] : nullptr;
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

std::string SaTable::install(const SaConfig& cfg) {
  if (const char* why = cfg.validate()) return why;
  std::lock_guard<std::mutex> hold(writer_);
  auto cur = std::atomic_load(&current_);
  if (cur->by_id.find(cfg.id))
    return "sa.id " + std::to_string(cfg.id) + " is already installed (remove it first, or install the rekeyed SA under a new id)";
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
  publish([&](Tables& t) {
    t.by_id.insert(cfg.id, sa);
    if (cfg.direction == Direction::in) {
      if (cfg.mode == Mode::spi) t.by_spi.insert(inbound_spi_key(cfg), sa.get());
      else t.by_skip.insert(sa->skip_key, sa.get());
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
      if (sa->cfg.mode == Mode::spi) t.by_spi.erase(inbound_spi_key(sa->cfg));
      else t.by_skip.erase(sa->skip_key);
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

void SaTable::set_policies(const std::vector<PolicyEntry>& policies) {
  std::lock_guard<std::mutex> hold(writer_);
  auto next = std::make_shared<PolicyTable>();
  next->policies = policies;
  std::vector<PrefixIndex::Entry> entries;
  for (size_t i = 0; i < policies.size(); i++) entries.push_back({policies[i].network, policies[i].length, uint32_t(i)});
  next->index.build(entries);
  publish([&](Tables& t) { t.policies = std::move(next); });
}

void SaTable::set_local(std::vector<uint32_t> addresses) {
  std::sort(addresses.begin(), addresses.end());
  std::lock_guard<std::mutex> hold(writer_);
  auto next = std::make_shared<const std::vector<uint32_t>>(std::move(addresses));
  publish([&](Tables& t) { t.local = std::move(next); });
}

void SaTable::clear() {
  std::lock_guard<std::mutex> hold(writer_);
  std::atomic_store(&current_, std::make_shared<const Tables>());
}

}  // namespace mipsec
