// A read-only open-addressing hash index, built once per table snapshot: lookups cost one multiply and a
// masked probe (no division, no rehash, no allocation), which is all the per-packet path does.
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace mipsec {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

template <class Key, class Value, class Hash>
class FlatIndex {
 public:
  void build(const std::vector<std::pair<Key, Value>>& items) {
    size_t capacity = 8;
    while (capacity < items.size() * 2) capacity <<= 1;
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    for (const auto& item : items) {
      size_t i = Hash{}(item.first) & mask_;
      while (slots_[i].used) i = (i + 1) & mask_;
      slots_[i] = Slot{item.first, item.second, true};
    }
  }

  const Value* find(const Key& key) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = Hash{}(key)&mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.key == key) return &s.value;
    }
  }

 private:
  struct Slot {
    Key key{};
    Value value{};
    bool used = false;
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

struct IntHash {
  size_t operator()(uint64_t k) const { return size_t(mix64(k)); }
};

}  // namespace mipsec
