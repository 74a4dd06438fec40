#include "sa/successors.h"
#include <cstdio>
#include <cstring>
#include <ctime>
#include <openssl/crypto.h>
#include "crypto/evp.h"
#include "crypto/packet_keys.h"
#include "sa/table.h"

namespace mipsec {

namespace {

void wipe(SuccessorConfig& c) {
  for (SuccessorPeer& p : c.peers)
    for (auto& [n, kijn] : p.kijns) OPENSSL_cleanse(kijn.data(), kijn.size());
}

uint64_t unix_seconds() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  return uint64_t(now.tv_sec);
}

// Whether `sa` is what a new key with this header, between these addresses, succeeds: the same peer, layer, outer
// addresses, algorithms and destination name.
bool succeeds(const Sa& sa, uint32_t src, uint32_t dst, const SkipView& skip) {
  const Role role = skip.crypt_alg != 0 ? Role::end : Role::nexthop;
  return sa.cfg.direction == Direction::in && sa.cfg.mode == Mode::skip && sa.cfg.role == role && sa.cfg.src == src &&
         sa.cfg.dst == dst && sa.skip.src_nsid == 0 && sa.skip.next == skip.next &&
         sa.skip.crypt_alg == skip.crypt_alg && sa.skip.mac_alg == skip.mac_alg && sa.skip.dst_nsid == skip.dst_nsid &&
         sa.skip.dst_mkid == skip.dst_mkid;
}

}  // namespace

SuccessorConfig::~SuccessorConfig() { wipe(*this); }

void Successors::configure(SuccessorConfig config) {
  std::lock_guard<std::mutex> hold(mu_);
  wipe(config_);
  config_ = std::move(config);
  peer_at_.clear();
  for (size_t i = 0; i < config_.peers.size(); i++) peer_at_[config_.peers[i].address] = i;
  blocked_ = std::unordered_set<uint64_t>(config_.blocked.begin(), config_.blocked.end());
  next_id_ = 0;
  table_.forget_tuples_before(config_.window_start);
}

// src/keys/digest52.ts over (outer source, dotted) ‖ SKIP header: the key of a replay mark
// (src/daemon/replay-marks.ts).
bool Successors::blocked(uint32_t src, const uint8_t* header, size_t len) const {
  if (blocked_.empty()) return false;
  char dotted[16];
  const int dotted_len =
      std::snprintf(dotted, sizeof dotted, "%u.%u.%u.%u", src >> 24, src >> 16 & 255, src >> 8 & 255, src & 255);
  uint8_t d[32];
  unsigned int d_len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok = ctx && algorithms().sha256 && EVP_DigestInit_ex(ctx, algorithms().sha256, nullptr) == 1 &&
                  EVP_DigestUpdate(ctx, dotted, size_t(dotted_len)) == 1 && EVP_DigestUpdate(ctx, header, len) == 1 &&
                  EVP_DigestFinal_ex(ctx, d, &d_len) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) return true;  // cannot tell: the control plane decides
  const uint64_t digest = uint64_t(load32(d)) << 20 | uint64_t(d[4]) << 12 | uint64_t(d[5]) << 4 | d[6] >> 4;
  return blocked_.count(digest) != 0;
}

std::shared_ptr<const Tables> Successors::key(const Tables& t, uint32_t src, uint32_t dst, const SkipView& skip,
                                              const uint8_t* header) {
  if (skip.src_nsid != 0 || skip.kij_alg != kKijAes256Kw) return nullptr;
  std::lock_guard<std::mutex> hold(mu_);
  if (next_id_ >= config_.ids.size() || keyed_.size() >= kMaxSuccessorEvents || unix_seconds() >= config_.valid_until)
    return nullptr;
  const auto at = peer_at_.find(src);
  if (at == peer_at_.end()) return nullptr;
  const SuccessorPeer& peer = config_.peers[at->second];
  const uint8_t* kijn = nullptr;
  for (const auto& [n, bytes] : peer.kijns)
    if (n == skip.n) kijn = bytes.data();
  const Sa* from = nullptr;
  for (uint32_t id : peer.templates) {
    const Sa* sa = t.find(id);
    if (sa && succeeds(*sa, src, dst, skip)) {
      from = sa;
      break;
    }
  }
  if (!kijn || !from || blocked(src, header, skip.len)) return nullptr;

  SaConfig cfg = from->cfg;
  uint8_t keys[kPacketKeyBytes + 2 * kMaxKeyBytes];
  const bool unwrapped =
      skip_packet_keys(kijn, skip.wrapped_kp, skip.crypt_alg, cfg.esp_key_len, skip.mac_alg, cfg.ah_key_len, keys);
  if (unwrapped) {
    std::memcpy(cfg.esp_key, keys + kPacketKeyBytes, cfg.esp_key_len);
    std::memcpy(cfg.ah_key, keys + kPacketKeyBytes + cfg.esp_key_len, cfg.ah_key_len);
  }
  OPENSSL_cleanse(keys, sizeof keys);
  if (!unwrapped) return nullptr;  // forged, or another Kij: the control plane refuses it and says why
  cfg.id = config_.ids[next_id_];
  std::memcpy(cfg.skip_header, header, skip.len);
  cfg.skip_len = skip.len;
  cfg.replay_floor = 0;
  // Refused: another worker keyed the tuple first (the packet goes on under its SA), or it was held before (punted).
  if (!table_.install(cfg, /*fresh_tuple=*/true).empty()) return table_.snapshot();
  next_id_++;
  KeyedSuccessor& k = keyed_.emplace_back();
  k.id = cfg.id;
  k.template_id = from->cfg.id;
  k.role = cfg.role;
  k.src = cfg.src;
  k.dst = cfg.dst;
  std::memcpy(k.skip_header, header, skip.len);
  k.skip_len = skip.len;
  return table_.snapshot();
}

std::vector<KeyedSuccessor> Successors::take() {
  std::lock_guard<std::mutex> hold(mu_);
  std::vector<KeyedSuccessor> out;
  out.swap(keyed_);
  return out;
}

}  // namespace mipsec
