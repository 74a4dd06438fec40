// A worker's batch (docs/engine.md §1 and §9): the slots the ports read packets into, their engine descriptors, where
// each came from and, for OUTBOUND, the start of the datagram to quote in an ICMP error. The ports fill it; the worker
// runs it through the engine and hands each verdict to a port. Also the loop's counters, which every port adds to.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>
#include "engine/abi.h"
#include "wire/icmp.h"
#include "wire/ipv4.h"

namespace mipsec::io {

// Batch geometry: slots of kSlotBytes with kHeadroom bytes in front for the outer layers and kTailroom behind for
// the ESP trailer, so a packet read may be at most kMaxPacket bytes (the TUN MTU cap).
constexpr size_t kBatchPackets = 64;
constexpr size_t kSlotBytes = 4096;
constexpr size_t kHeadroom = 512;
constexpr size_t kTailroom = 64;
constexpr size_t kMaxPacket = kSlotBytes - kHeadroom - kTailroom;

// Where a packet entered: the TUN side (OUTBOUND ran) or the network side (raw socket or UDP transport: INBOUND ran).
enum class From : uint8_t { tun = 0, raw = 1 };

// Loop counters, as named by stat_names().
enum Stat : int {
  S_RX_TUN,
  S_RX_GSO,
  S_RX_RAW,
  S_RX_SKIP,
  S_RX_AH,
  S_RX_ESP,
  S_RX_IPIP,
  S_RX_TOO_BIG,
  S_RX_ERRORS,
  S_TX_RAW,
  S_TX_TUN,
  S_TX_GRO,
  S_TX_TOO_BIG,
  S_TX_FRAG_NEEDED,
  S_TX_ERRORS,
  S_PUNTED,
  S_PUNT_DROPPED,
  S_INJECTED,
  S_INJECT_DROPPED,
  S_RX_UDP,
  S_RX_UDP_GRO,
  S_TX_UDP,
  S_TX_UDP_GSO,
  S_RX_UNAUTHENTICATED,
  S_RX_UDP_MISADDRESSED,
  S_RX_FOREIGN_INTERFACE,
  S_FAST_PATH,
  S_HELD_FOR_KEY,
  S_HELD_EXPIRED,
  S_TX_SPLIT,
  S_NICE_REFUSED,
  S_TX_KERNEL,
  S_COUNT
};
const char* const* stat_names();

struct LoopStats {
  std::atomic<uint64_t> value[S_COUNT] = {};
  void add(Stat s, uint64_t n = 1) { value[s].fetch_add(n, std::memory_order_relaxed); }
  uint64_t get(Stat s) const { return value[s].load(std::memory_order_relaxed); }
};

// A send the kernel refused: the batch index of the packet and the errno.
struct Refusal {
  size_t index;
  int err;
};

class Batch {
 public:
  explicit Batch(uint32_t table) : table_(table) {}

  // Runs the batch (set by the worker); a port calls it through make_room() when what it reads would not fit.
  std::function<void()> flush;
  // Set by the worker when it takes some datagrams before the engine: the UDP transport offers each datagram it read
  // here first; true: taken (punted), not to be queued.
  std::function<bool(const uint8_t* p, size_t len)> divert;
  bool diverted(const uint8_t* p, size_t len) const { return divert && divert(p, len); }

  size_t count() const { return count_; }
  bool full() const { return count_ == kBatchPackets; }
  // Flushes first when n more packets would not fit.
  void make_room(size_t n) {
    if (count_ + n > kBatchPackets) flush();
  }
  // Where the next packet goes (kMaxPacket bytes).
  uint8_t* next_slot() { return slot(count_); }
  uint8_t* slot(size_t i) { return buffer_.data() + i * kSlotBytes + kHeadroom; }
  // Queues the packet written at next_slot() for op (OUTBOUND on the TUN's policy table).
  void queue(uint32_t op, size_t len, From f) {
    uint32_t* d = desc_.data() + count_ * kDescWords;
    std::memset(d, 0, kDescWords * sizeof *d);
    d[D_OP] = op;
    d[D_ARG0] = op == OP_OUTBOUND ? table_ : 0;
    d[D_OFFSET] = uint32_t(count_ * kSlotBytes + kHeadroom);
    d[D_LENGTH] = uint32_t(len);
    from_[count_++] = f;
  }
  // Empties the batch for the next one; returns how many packets it held. Keeps each OUTBOUND packet's start to
  // quote (quote()) and, for one without DF, all of it (original()): the engine rewrites the slot, and a datagram
  // the link refuses once sealed is answered with ICMP 3/4 from the quote, or split and sealed again from the copy.
  size_t take() {
    const size_t n = count_;
    count_ = 0;
    for (size_t i = 0; i < n; i++) {
      const uint32_t* d = desc(i);
      const uint8_t* p = buffer_.data() + d[D_OFFSET];
      const bool outbound = d[D_OP] == OP_OUTBOUND;
      quote_len_[i] = outbound ? std::min<size_t>(d[D_LENGTH], kIcmpQuoteMax) : 0;
      std::memcpy(quote_[i], p, quote_len_[i]);
      original_len_[i] = outbound && quote_len_[i] >= 20 && !(load16(p + 6) & kIpv4Df) ? d[D_LENGTH] : 0;
      if (original_len_[i] > quote_len_[i]) {
        if (original_.empty()) original_.resize(kBatchPackets * kMaxPacket);
        std::memcpy(original_.data() + i * kMaxPacket, p, original_len_[i]);
      }
    }
    return n;
  }

  uint8_t* buffer() { return buffer_.data(); }
  size_t buffer_size() const { return buffer_.size(); }
  uint32_t* desc(size_t i = 0) { return desc_.data() + i * kDescWords; }
  const uint32_t* desc(size_t i = 0) const { return desc_.data() + i * kDescWords; }
  // Packet i as the engine left it.
  uint8_t* data(size_t i) { return buffer_.data() + desc(i)[D_OFFSET]; }
  const uint8_t* data(size_t i) const { return buffer_.data() + desc(i)[D_OFFSET]; }
  size_t length(size_t i) const { return desc(i)[D_LENGTH]; }
  From from(size_t i) const { return from_[i]; }
  const uint8_t* quote(size_t i) const { return quote_[i]; }
  size_t quote_length(size_t i) const { return quote_len_[i]; }
  // An OUTBOUND datagram without DF as it was queued (original_length 0: none kept).
  const uint8_t* original(size_t i) const {
    return original_len_[i] > quote_len_[i] ? original_.data() + i * kMaxPacket : quote_[i];
  }
  size_t original_length(size_t i) const { return original_len_[i]; }

 private:
  uint32_t table_;
  size_t count_ = 0;
  std::vector<uint8_t> buffer_ = std::vector<uint8_t>(kBatchPackets * kSlotBytes);
  std::vector<uint32_t> desc_ = std::vector<uint32_t>(kBatchPackets * kDescWords);
  From from_[kBatchPackets] = {};
  uint8_t quote_[kBatchPackets][kIcmpQuoteMax] = {};
  size_t quote_len_[kBatchPackets] = {};
  std::vector<uint8_t> original_;  // kMaxPacket per packet, allocated when a datagram without DF first needs it
  size_t original_len_[kBatchPackets] = {};
};

}  // namespace mipsec::io
