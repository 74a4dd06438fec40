// A persistent hash trie: insert and erase copy the path from the root to one leaf (at most 16 levels of 16
// child pointers, about log16(n) of them in use) and share every other node with the previous version. A
// table publish after one SA changed therefore costs O(log n), not a copy of the table, and a batch still
// holding the previous version reads it unchanged (docs/engine.md §4). Lookups walk the same path.
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace mipsec {

template <class Key, class Value, class Hash>
class HashTrie {
 public:
  const Value* find(const Key& key) const {
    uint64_t h = Hash{}(key);
    const Node* n = root_.get();
    for (int shift = 0; n && !n->leaf; shift += kBits) n = n->child[(h >> shift) & kMask].get();
    if (!n) return nullptr;
    for (const Item& item : n->items)
      if (item.first == key) return &item.second;
    return nullptr;
  }

  // Adds key or replaces its value.
  void insert(const Key& key, const Value& value) {
    bool added = false;
    root_ = with(root_.get(), Hash{}(key), 0, key, value, &added);
    size_ += added;
  }

  // False when key was not there.
  bool erase(const Key& key) {
    if (!find(key)) return false;
    root_ = without(root_.get(), Hash{}(key), 0, key);
    size_--;
    return true;
  }

  size_t size() const { return size_; }

 private:
  static constexpr int kBits = 4;
  static constexpr uint64_t kMask = (1u << kBits) - 1;
  static constexpr size_t kLeafMax = 8;  // a fuller leaf splits, unless the whole 64-bit hash is spent
  using Item = std::pair<Key, Value>;
  struct Node;
  using NodePtr = std::shared_ptr<const Node>;
  struct Node {
    bool leaf = true;
    std::vector<Item> items;  // leaf
    std::array<NodePtr, size_t(1) << kBits> child;  // branch
  };

  static NodePtr with(const Node* n, uint64_t h, int shift, const Key& key, const Value& value, bool* added) {
    if (!n) {
      auto leaf = std::make_shared<Node>();
      leaf->items.emplace_back(key, value);
      *added = true;
      return leaf;
    }
    auto copy = std::make_shared<Node>(*n);
    if (!n->leaf) {
      NodePtr& slot = copy->child[(h >> shift) & kMask];
      slot = with(slot.get(), h, shift + kBits, key, value, added);
      return copy;
    }
    for (Item& item : copy->items)
      if (item.first == key) return item.second = value, copy;
    copy->items.emplace_back(key, value);
    *added = true;
    return copy->items.size() > kLeafMax && shift + kBits < 64 ? split(*copy, shift) : copy;
  }

  // A full leaf becomes a branch whose children sort its items by the next hash digit.
  static NodePtr split(const Node& leaf, int shift) {
    auto branch = std::make_shared<Node>();
    branch->leaf = false;
    bool added;
    for (const Item& item : leaf.items) {
      NodePtr& slot = branch->child[(Hash{}(item.first) >> shift) & kMask];
      slot = with(slot.get(), Hash{}(item.first), shift + kBits, item.first, item.second, &added);
    }
    return branch;
  }

  // n holds key (erase checked); empty nodes are dropped so a drained trie frees its branches.
  static NodePtr without(const Node* n, uint64_t h, int shift, const Key& key) {
    auto copy = std::make_shared<Node>(*n);
    if (n->leaf) {
      auto& items = copy->items;
      items.erase(std::find_if(items.begin(), items.end(), [&](const Item& item) { return item.first == key; }));
      return copy->items.empty() ? nullptr : copy;
    }
    NodePtr& slot = copy->child[(h >> shift) & kMask];
    slot = without(slot.get(), h, shift + kBits, key);
    for (const NodePtr& c : copy->child)
      if (c) return copy;
    return nullptr;
  }

  NodePtr root_;
  size_t size_ = 0;
};

}  // namespace mipsec
