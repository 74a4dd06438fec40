#include "sa/replay.h"
#include <cstring>

namespace mipsec {

void ReplayWindow::reset(uint32_t size_bits, uint32_t floor) {
  size_ = size_bits;
  top_ = floor;
  std::memset(bits_, floor == 0 ? 0 : 0xff, sizeof bits_);
}

bool ReplayWindow::check(uint32_t seq) const {
  if (seq == 0) return false;
  if (seq > top_) return true;
  if (top_ - seq >= size_) return false;
  return !test(seq);
}

bool ReplayWindow::commit(uint32_t seq) {
  if (!check(seq)) return false;
  if (seq > top_) {
    if (seq - top_ >= size_) {
      std::memset(bits_, 0, size_ / 8);
    } else {
      // Slots of seq in (top, seq] held seqs that now fall left of the window.
      for (uint32_t s = top_ + 1; s != seq + 1;) {
        if ((s & 63) == 0 && seq - s >= 63) {
          bits_[(s % size_) >> 6] = 0;
          s += 64;
        } else {
          clear(s);
          s++;
        }
      }
    }
    top_ = seq;
  }
  set(seq);
  return true;
}

}  // namespace mipsec
