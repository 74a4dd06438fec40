#include "sa/sa.h"
#include <openssl/crypto.h>
#include <algorithm>
#include <thread>

namespace mipsec {

size_t mac_key_bytes(MacAlg a) {
  return a == MacAlg::gmac_aes128 ? 16 + kSaltBytes : a == MacAlg::hmac_sha256_128 ? 32 : 0;
}

uint8_t skip_crypt_alg(AeadSuite s) {
  switch (s) {
    case AeadSuite::aes128gcm:
      return 250;
    case AeadSuite::aes256gcm:
      return 251;
    case AeadSuite::chacha20poly1305:
      return 252;
    default:
      return 0;
  }
}

uint8_t skip_mac_alg(MacAlg a) { return a == MacAlg::gmac_aes128 ? 250 : a == MacAlg::hmac_sha256_128 ? 251 : 0; }

static bool any_contains(const SelectorPrefix* prefixes, size_t count, uint32_t addr) {
  for (size_t i = 0; i < count; i++)
    if (prefixes[i].contains(addr)) return true;
  return false;
}

bool Selectors::admit(uint32_t src_addr, uint32_t dst_addr) const {
  return !on || (any_contains(src, src_count, src_addr) && any_contains(dst, dst_count, dst_addr));
}

bool Selectors::admit_src(uint32_t src_addr) const { return !on || any_contains(src, src_count, src_addr); }

static bool prefixes_valid(const SelectorPrefix* prefixes, size_t count) {
  for (size_t i = 0; i < count; i++) {
    const SelectorPrefix& p = prefixes[i];
    if (p.length > 32 || (p.length < 32 && (p.network << p.length) != 0)) return false;
  }
  return count > 0 && count <= kMaxSelectorPrefixes;
}

SaConfig::~SaConfig() {
  OPENSSL_cleanse(ah_key, sizeof ah_key);
  OPENSSL_cleanse(esp_key, sizeof esp_key);
}

const char* SaConfig::validate() const {
  if (id == 0) return "sa.id must be a positive integer";
  const bool ah = ah_alg != MacAlg::none, esp = esp_suite != AeadSuite::none;
  if (role == Role::nexthop && (!ah || esp)) return "role 'nexthop' needs sa.ah and no sa.esp";
  if (role == Role::end && !esp) return "role 'end' needs sa.esp";
  if (role == Role::end && coverage != Coverage::full) return "sa.ah.coverage applies to role 'nexthop' only";
  if (role == Role::nexthop && selectors.on) return "sa.selectors apply to role 'end' only";
  if (role == Role::nexthop && selector_miss != SelectorMiss::drop) return "sa.selectorMiss applies to role 'end' only";
  if (selector_miss == SelectorMiss::outbound && !selectors.on)
    return "sa.selectorMiss { outbound } needs sa.selectors (their src side is what the peer may send)";
  if (role == Role::end && !relay) return "sa.relay applies to role 'nexthop' only";
  if (role == Role::end && plain_on) return "sa.plain applies to role 'nexthop' only";
  if (plain_on && !prefixes_valid(plain_src, plain_src_count))
    return "sa.plain.src needs 1..32 prefixes, without host bits";
  if (max_packets != 0 && soft_packets > max_packets) return "sa.softPackets must not exceed sa.maxPackets";
  if (selectors.on &&
      (!prefixes_valid(selectors.src, selectors.src_count) || !prefixes_valid(selectors.dst, selectors.dst_count)))
    return "sa.selectors need 1..32 prefixes on each side, without host bits";
  if ((selectors.tunnel_src != 0 || selectors.tunnel_dst != 0) && !selectors.on)
    return "sa.selectors.tunnel needs sa.selectors (src and dst)";
  if ((selectors.tunnel_src == 0) != (selectors.tunnel_dst == 0))
    return "sa.selectors.tunnel needs both src and dst (not 0.0.0.0)";
  if (ah && ah_key_len != mac_key_bytes(ah_alg))
    return "sa.ah.key has the wrong length for sa.ah.alg (gmac-aes128: 20 bytes, hmac-sha256-128: 32)";
  if (esp && esp_key_len != aead_key_bytes(esp_suite) + kSaltBytes)
    return "sa.esp.key has the wrong length for sa.esp.suite (aes128gcm: 20 bytes, aes256gcm and chacha20poly1305: 36)";
  if (direction == Direction::in && (replay_window < 64 || replay_window > kMaxReplayWindow || replay_window % 64 != 0))
    return "sa.replayWindow must be a multiple of 64 in 64..4096";
  if (mode == Mode::spi) {
    if (skip_len != 0) return "sa.skipHeader is for mode 'skip' only";
    if ((ah && ah_spi < kMinSpi) || (esp && esp_spi < kMinSpi)) return "SPIs in mode 'spi' must be at least 256";
    return nullptr;
  }
  if ((ah && ah_spi != kSkipSpi) || (esp && esp_spi != kSkipSpi)) return "SPIs in mode 'skip' must be 1 (SKIP_SPI)";
  SkipView v;
  if (skip_len == 0) return "mode 'skip' needs sa.skipHeader";
  if (skip_parse(skip_header, skip_len, &v) != R_NONE || v.len != skip_len)
    return "sa.skipHeader is not a valid SKIP header (build it with encodeSkipHeader)";
  if (v.next != (ah ? 51 : 50)) return "sa.skipHeader next header must be 51 (AH) when the SA has AH, else 50 (ESP)";
  if (v.crypt_alg != skip_crypt_alg(esp_suite))
    return "sa.skipHeader Crypt Alg must match sa.esp.suite (0 for role 'nexthop')";
  if (v.mac_alg != skip_mac_alg(ah_alg)) return "sa.skipHeader MAC Alg must match sa.ah.alg (0 without AH)";
  return nullptr;
}

Sa::Sa(const SaConfig& c) : cfg(c), ah_out_(c.ah_seq), esp_out_(c.esp_seq) {
  if (cfg.mode == Mode::skip) {
    skip_parse(cfg.skip_header, cfg.skip_len, &skip);  // validated before construction
    skip_key = mipsec::skip_key(skip, cfg.src);
  }
  ah_window_.reset(cfg.replay_window, cfg.replay_floor);
  esp_window_.reset(cfg.replay_window, cfg.replay_floor);
}

Sa::~Sa() { OPENSSL_cleanse(&skip_key, sizeof skip_key); }  // contexts free (and cleanse) their schedules

bool Sa::next_seq(std::atomic<uint64_t>& counter, uint32_t* seq) {
  uint64_t cur = counter.load(std::memory_order_relaxed);
  do {
    if (cur >= kMaxSeq) return false;
  } while (!counter.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed));
  *seq = uint32_t(cur + 1);
  return true;
}

bool Sa::replay_check_ah(uint32_t seq) {
  lock();
  bool ok = ah_window_.check(seq);
  unlock();
  return ok;
}

bool Sa::replay_check_esp(uint32_t seq) {
  lock();
  bool ok = esp_window_.check(seq);
  unlock();
  return ok;
}

bool Sa::replay_commit(bool ah, uint32_t ah_seq, bool esp, uint32_t esp_seq) {
  lock();
  bool ok = (!ah || ah_window_.check(ah_seq)) && (!esp || esp_window_.check(esp_seq));
  if (ok) {
    if (ah) ah_window_.commit(ah_seq);
    if (esp) esp_window_.commit(esp_seq);
  }
  unlock();
  return ok;
}

Sa::Stats Sa::stats() {
  Stats s{packets_.load(), bytes_.load(), 0, 0};
  if (cfg.direction == Direction::out) {
    s.ah_seq = uint32_t(std::min<uint64_t>(ah_out_.load(), kMaxSeq));
    s.esp_seq = uint32_t(std::min<uint64_t>(esp_out_.load(), kMaxSeq));
  } else {
    lock();
    s.ah_seq = ah_window_.top();
    s.esp_seq = esp_window_.top();
    unlock();
  }
  if (!has_ah()) s.ah_seq = 0;
  if (!has_esp()) s.esp_seq = 0;
  return s;
}

SaCrypto* Sa::make_crypto() {
  auto c = std::make_unique<SaCrypto>();
  bool ok = true;
  if (has_esp()) ok = ok && c->esp.init(cfg.esp_suite, cfg.esp_key);
  if (cfg.ah_alg == MacAlg::gmac_aes128) ok = ok && c->gmac.init(cfg.ah_key);
  if (cfg.ah_alg == MacAlg::hmac_sha256_128) ok = ok && c->hmac.init(cfg.ah_key, cfg.ah_key_len);
  return ok ? c.release() : nullptr;
}

CryptoLease::CryptoLease(Sa& sa) : sa_(sa), slot_(-1), crypto_(nullptr) {
  for (int spin = 0;; spin++) {
    for (int i = 0; i < Sa::kSlots; i++) {
      if (!sa.slots_[i].busy.exchange(true, std::memory_order_acquire)) {
        slot_ = i;
        break;
      }
    }
    if (slot_ >= 0) break;
    if (spin > 64) std::this_thread::yield();
  }
  Sa::Slot& slot = sa.slots_[slot_];
  if (!slot.crypto) slot.crypto.reset(sa.make_crypto());  // once per slot: the key schedule is set here
  crypto_ = slot.crypto.get();
}

CryptoLease::~CryptoLease() { sa_.slots_[slot_].busy.store(false, std::memory_order_release); }

}  // namespace mipsec
