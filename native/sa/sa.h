// A security association: suite, keys, outbound sequence counters, inbound anti-replay windows, statistics,
// and per-thread crypto contexts with the key schedule set once (docs/engine.md §4).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include "crypto/aead.h"
#include "crypto/hmac.h"
#include "sa/replay.h"
#include "wire/ah.h"
#include "wire/skip.h"

namespace mipsec {

enum class Direction : uint8_t { out = 0, in = 1 };
enum class Role : uint8_t { end = 0, nexthop = 1 };
enum class Mode : uint8_t { skip = 0, spi = 1 };
enum class Coverage : uint8_t { full = 0, headers = 1 };
// What an inbound End-End SA does with an opened datagram outside its selectors (docs/engine.md §4, §5): drop it,
// punt it, or (from a source inside its src selectors) classify it by an outbound policy table.
enum class SelectorMiss : uint8_t { drop = 0, punt = 1, outbound = 2 };

constexpr size_t kMaxKeyBytes = 36;
// The smallest SPI of mode 'spi' (RFC 4303: 1..255 are reserved).
constexpr uint32_t kMinSpi = 256;
constexpr uint32_t kMaxSeq = 0xffffffffu;
// Prefixes per side of an inbound End-End SA's traffic selectors (an SGW region, an SMN's two addresses).
constexpr size_t kMaxSelectorPrefixes = 32;

struct SelectorPrefix {
  uint32_t network;
  uint8_t length;  // 0..32
  bool contains(uint32_t addr) const { return length == 0 || (addr ^ network) >> (32 - length) == 0; }
};

// RFC 4301 §5.2: the inner source and destination an inbound End-End SA may carry; off = anything.
struct Selectors {
  bool on = false;
  uint8_t src_count = 0, dst_count = 0;
  SelectorPrefix src[kMaxSelectorPrefixes] = {};
  SelectorPrefix dst[kMaxSelectorPrefixes] = {};
  // An RFC 2003 tunnel (outer source, outer destination; both 0 = none) whose inner datagram the selectors judge:
  // whole IP-in-IP from tunnel_src to tunnel_dst passes when the datagram inside lies inside both sides.
  uint32_t tunnel_src = 0, tunnel_dst = 0;
  // Whether an inner datagram from `src` to `dst` lies inside both sides.
  bool admit(uint32_t src_addr, uint32_t dst_addr) const;
  // Whether `src_addr` lies in one src prefix (always when off).
  bool admit_src(uint32_t src_addr) const;
};

// What the control plane installs; validated by SaConfig::validate before an Sa is built.
struct SaConfig {
  uint32_t id = 0;
  Direction direction = Direction::out;
  Role role = Role::end;
  Mode mode = Mode::skip;
  uint32_t src = 0, dst = 0;
  uint8_t skip_header[kSkipMaxHeader] = {};
  size_t skip_len = 0;
  MacAlg ah_alg = MacAlg::none;
  uint8_t ah_key[kMaxKeyBytes] = {};
  size_t ah_key_len = 0;
  uint32_t ah_spi = 0;
  uint32_t ah_seq = 0;
  Coverage coverage = Coverage::full;
  AeadSuite esp_suite = AeadSuite::none;
  uint8_t esp_key[kMaxKeyBytes] = {};
  size_t esp_key_len = 0;
  uint32_t esp_spi = 0;
  uint32_t esp_seq = 0;
  uint32_t replay_window = 1024;
  uint32_t replay_floor = 0;  // in: sequence numbers <= it are replays (docs/engine.md)
  uint8_t ttl = 64;
  uint32_t max_packets = 0;  // out: packets ENCAP/WRAP/OUTBOUND protect may seal with it; 0 = no limit
  uint32_t soft_packets = 0;  // out: the FORWARD that seals this many says R_REKEY_DUE (once); 0 = never
  bool relay = true;  // in, role nexthop: a verified datagram not for this node may be relayed (else punted)
  Selectors selectors;  // in, role end
  SelectorMiss selector_miss = SelectorMiss::drop;  // in, role end: what a datagram outside the selectors gets
  uint32_t selector_miss_table = 0;  // SelectorMiss::outbound: the policy table that decides it
  // In, role nexthop (docs/engine.md §4 `plain`): a plain datagram the verified layer protected, from a source in
  // plain_src, is classified by policy table plain_table (pass forwards it as a router, drop drops it); off = punted.
  bool plain_on = false;
  uint8_t plain_src_count = 0;
  SelectorPrefix plain_src[kMaxSelectorPrefixes] = {};
  uint32_t plain_table = 0;
  // Whether `addr` lies in one plain_src prefix.
  bool plain_admits(uint32_t addr) const {
    for (uint8_t i = 0; i < plain_src_count; i++)
      if (plain_src[i].contains(addr)) return true;
    return false;
  }

  // Null when consistent, else a message naming the field and the fix (never key bytes).
  const char* validate() const;
  ~SaConfig();
};

size_t mac_key_bytes(MacAlg a);  // salt included for GMAC
uint8_t skip_crypt_alg(AeadSuite s);
uint8_t skip_mac_alg(MacAlg a);

// The EVP state of one SA for one thread at a time.
struct SaCrypto {
  Aead esp;
  AesGmac gmac;
  HmacSha256 hmac;
};

class Sa;

// Exclusive use of one of the SA's crypto slots; released on destruction.
class CryptoLease {
 public:
  CryptoLease(Sa& sa);
  ~CryptoLease();
  CryptoLease(const CryptoLease&) = delete;
  CryptoLease& operator=(const CryptoLease&) = delete;
  // Null if the contexts could not be created (out of memory, cipher missing): callers drop the packet as
  // `auth`, the one reason that says it could not be protected or verified.
  SaCrypto* get() const { return crypto_; }

 private:
  Sa& sa_;
  int slot_;
  SaCrypto* crypto_;
};

class Sa {
 public:
  explicit Sa(const SaConfig& c);
  ~Sa();
  Sa(const Sa&) = delete;
  Sa& operator=(const Sa&) = delete;

  const SaConfig cfg;
  // Inbound SKIP match data, parsed once from cfg.skip_header.
  SkipView skip{};
  SkipKey skip_key{};

  bool has_ah() const { return cfg.ah_alg != MacAlg::none; }
  bool has_esp() const { return cfg.esp_suite != AeadSuite::none; }
  const uint8_t* esp_salt() const { return cfg.esp_key + cfg.esp_key_len - kSaltBytes; }
  const uint8_t* gmac_salt() const { return cfg.ah_key + cfg.ah_key_len - kSaltBytes; }

  // Outbound: whether every header of the SA has a sequence number left (checked before any is taken).
  bool has_seq_left() const {
    return (!has_ah() || ah_out_.load(std::memory_order_relaxed) < kMaxSeq) &&
           (!has_esp() || esp_out_.load(std::memory_order_relaxed) < kMaxSeq);
  }
  // Outbound: whether the SA already sealed its max_packets (docs/engine.md §4: the packet is PUNT rekey).
  // Workers count concurrently, so packets in flight on other threads may overshoot it by a little.
  bool packet_limit_reached() const {
    return cfg.max_packets != 0 && packets_.load(std::memory_order_relaxed) >= cfg.max_packets;
  }
  // Outbound: the next sequence number; false when it would wrap (rekey).
  bool next_ah_seq(uint32_t* seq) { return next_seq(ah_out_, seq); }
  bool next_esp_seq(uint32_t* seq) { return next_seq(esp_out_, seq); }

  // Inbound anti-replay: check before the ICV; commit both headers' numbers after it verifies.
  bool replay_check_ah(uint32_t seq);
  bool replay_check_esp(uint32_t seq);
  bool replay_commit(bool ah, uint32_t ah_seq, bool esp, uint32_t esp_seq);

  // Counts one sealed packet of `bytes` (the inner datagram of an End-End layer). True for exactly one packet, the
  // one that brings the count to soft_packets: each fetch_add returns a distinct count, whichever thread seals.
  bool count(size_t bytes) {
    const uint64_t sealed = packets_.fetch_add(1, std::memory_order_relaxed) + 1;
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
    return cfg.soft_packets != 0 && sealed == cfg.soft_packets;
  }
  struct Stats {
    uint64_t packets, bytes;
    uint32_t ah_seq, esp_seq;
  };
  Stats stats();

 private:
  friend class CryptoLease;
  static constexpr int kSlots = 8;
  struct Slot {
    std::atomic<bool> busy{false};
    std::unique_ptr<SaCrypto> crypto;
  };
  static bool next_seq(std::atomic<uint64_t>& counter, uint32_t* seq);
  SaCrypto* make_crypto();
  void lock() {
    while (window_lock_.test_and_set(std::memory_order_acquire)) {
    }
  }
  void unlock() { window_lock_.clear(std::memory_order_release); }

  Slot slots_[kSlots];
  std::atomic<uint64_t> ah_out_, esp_out_;
  std::atomic_flag window_lock_ = ATOMIC_FLAG_INIT;
  ReplayWindow ah_window_, esp_window_;
  std::atomic<uint64_t> packets_{0}, bytes_{0};
};

}  // namespace mipsec
