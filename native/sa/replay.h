// Inbound anti-replay window (RFC 4303 App. A): check before the ICV, commit after it verifies.
#pragma once
#include <cstdint>

namespace mipsec {

constexpr uint32_t kMaxReplayWindow = 4096;

// A ring bitmap indexed by seq mod size: advancing never shifts, it clears the bits it passes.
// Not thread-safe by itself: the SA guards it.
class ReplayWindow {
 public:
  // size_bits: a multiple of 64 in 64..4096; every seq <= floor counts as seen (a restart does not reopen them).
  void reset(uint32_t size_bits, uint32_t floor = 0);
  bool check(uint32_t seq) const;  // false: 0, duplicate or left of the window
  bool commit(uint32_t seq);  // re-checks (another thread may have committed it); false: replay
  uint32_t top() const { return top_; }

 private:
  bool test(uint32_t seq) const { return (bits_[(seq % size_) >> 6] >> (seq & 63)) & 1; }
  void set(uint32_t seq) { bits_[(seq % size_) >> 6] |= uint64_t(1) << (seq & 63); }
  void clear(uint32_t seq) { bits_[(seq % size_) >> 6] &= ~(uint64_t(1) << (seq & 63)); }

  uint32_t size_ = 1024;
  uint32_t top_ = 0;  // highest authenticated sequence number
  uint64_t bits_[kMaxReplayWindow / 64] = {};
};

}  // namespace mipsec
