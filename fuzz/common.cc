#include "common.h"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>
#include "crypto/keywrap.h"
#include "crypto/packet_keys.h"
#include "wire/ipv4.h"
#include "wire/skip.h"
#include "xform/packet.h"

namespace fuzz {

using namespace mipsec;

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "FINDING: %s\n", what);
  std::abort();
}

const std::vector<SaSpec>& end_specs() {
  static const std::vector<SaSpec> specs = [] {
    std::vector<SaSpec> v;
    for (Mode mode : {Mode::skip, Mode::spi})
      for (AeadSuite suite : {AeadSuite::aes128gcm, AeadSuite::aes256gcm, AeadSuite::chacha20poly1305})
        for (MacAlg mac : {MacAlg::none, MacAlg::gmac_aes128, MacAlg::hmac_sha256_128})
          v.push_back({Role::end, mode, suite, mac, Coverage::full, mode == Mode::skip && v.size() % 2 == 1});
    return v;
  }();
  return specs;
}

const std::vector<SaSpec>& nexthop_specs() {
  static const std::vector<SaSpec> specs = [] {
    std::vector<SaSpec> v;
    for (Mode mode : {Mode::skip, Mode::spi})
      for (MacAlg mac : {MacAlg::gmac_aes128, MacAlg::hmac_sha256_128})
        for (Coverage cov : {Coverage::full, Coverage::headers})
          v.push_back({Role::nexthop, mode, AeadSuite::none, mac, cov, mode == Mode::skip && cov == Coverage::headers});
    return v;
  }();
  return specs;
}

const std::vector<SaSpec>& relay_specs() {
  static const std::vector<SaSpec> specs = {
      {Role::nexthop, Mode::skip, AeadSuite::none, MacAlg::gmac_aes128, Coverage::headers, true},
      {Role::nexthop, Mode::spi, AeadSuite::none, MacAlg::hmac_sha256_128, Coverage::full, false},
  };
  return specs;
}

uint32_t end_out_id(size_t i) { return uint32_t(1 + i); }
uint32_t nexthop_out_id(size_t i) { return uint32_t(1 + end_specs().size() + i); }
uint32_t relay_out_id(size_t i) { return uint32_t(1 + end_specs().size() + nexthop_specs().size() + i); }

static void fill(uint8_t* p, size_t n, uint32_t seed) {
  uint32_t x = seed * 2654435761u | 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = uint8_t(x);
  }
}

static size_t write_skip(uint8_t* p, const SaSpec& s, uint32_t seed, uint32_t src, uint32_t dst) {
  const uint8_t nsid = s.mkids ? 1 : 0;
  p[0] = 0x10;
  p[1] = nsid;
  p[2] = nsid;
  p[3] = s.mac != MacAlg::none ? PROTO_AH : PROTO_ESP;
  store32(p + 4, 0x4320 + seed);
  p[8] = kKijAes256Kw;
  p[9] = skip_crypt_alg(s.suite);
  p[10] = skip_mac_alg(s.mac);
  p[11] = 0;
  fill(p + kSkipFixed, kWrappedKpBytes, seed + 7);
  size_t at = kSkipFixed + kWrappedKpBytes;
  if (s.mkids) {
    store32(p + at, src);
    store32(p + at + 4, dst);
    at += 8;
  }
  return at;
}

// One SA of the cast. `index` names the pair (keys, SPIs, Kp); id is out or in id.
static SaConfig make_sa(const SaSpec& s, uint32_t index, uint32_t id, Direction d, uint32_t src, uint32_t dst) {
  SaConfig c;
  c.id = id;
  c.direction = d;
  c.role = s.role;
  c.mode = s.mode;
  c.src = src;
  c.dst = dst;
  if (s.mode == Mode::skip) c.skip_len = write_skip(c.skip_header, s, index, src, dst);
  if (s.mac != MacAlg::none) {
    c.ah_alg = s.mac;
    c.ah_key_len = mac_key_bytes(s.mac);
    fill(c.ah_key, c.ah_key_len, index * 3 + 1);
    c.ah_spi = s.mode == Mode::skip ? kSkipSpi : 0x1001 + index * 2;
    c.coverage = s.coverage;
  }
  if (s.suite != AeadSuite::none) {
    c.esp_suite = s.suite;
    c.esp_key_len = aead_key_bytes(s.suite) + kSaltBytes;
    fill(c.esp_key, c.esp_key_len, index * 3 + 2);
    c.esp_spi = s.mode == Mode::skip ? kSkipSpi : 0x1000 + index * 2;
  }
  return c;
}

SaConfig end_sa(size_t i, Direction d) {
  const uint32_t id = end_out_id(i);
  return make_sa(end_specs()[i], id, d == Direction::out ? id : id + kInOffset, d, kSender, kEndGw);
}

SaConfig nexthop_sa(size_t i, Direction d) {
  const uint32_t id = nexthop_out_id(i);
  return make_sa(nexthop_specs()[i], id, d == Direction::out ? id : id + kInOffset, d, kSender, kRelayGw);
}

SaConfig relay_sa(size_t i, Direction d) {
  const uint32_t id = relay_out_id(i);
  return make_sa(relay_specs()[i], id, d == Direction::out ? id : id + kInOffset, d, kRelayGw, kEndGw);
}

void install(EngineCore& e, const SaConfig& c) {
  std::string why = e.table.install(c);
  if (!why.empty()) {
    std::fprintf(stderr, "fuzz cast: SA %u does not install: %s\n", c.id, why.c_str());
    std::abort();
  }
}

std::unique_ptr<EngineCore> make_sender() {
  auto e = std::make_unique<EngineCore>();
  for (size_t i = 0; i < end_specs().size(); i++) install(*e, end_sa(i, Direction::out));
  for (size_t i = 0; i < nexthop_specs().size(); i++) install(*e, nexthop_sa(i, Direction::out));
  return e;
}

std::unique_ptr<EngineCore> make_spent_sender() {
  auto e = std::make_unique<EngineCore>();
  for (size_t i = 0; i < end_specs().size(); i++) {
    SaConfig c = end_sa(i, Direction::out);
    c.max_packets = 1;
    install(*e, c);
    Bytes d = datagram(60, kSender, kEndGw, uint8_t(i));
    if (run_op(*e, d, OP_ENCAP, c.id).verdict != V_FORWARD) std::abort();
  }
  for (size_t i = 0; i < nexthop_specs().size(); i++) {
    SaConfig c = nexthop_sa(i, Direction::out);
    c.max_packets = 1;
    install(*e, c);
    Bytes d = datagram(60, kSender, kRelayGw, uint8_t(i));
    if (run_op(*e, d, OP_WRAP, c.id).verdict != V_FORWARD) std::abort();
  }
  return e;
}

std::unique_ptr<EngineCore> make_peeler() {
  auto e = std::make_unique<EngineCore>();
  for (size_t i = 0; i < end_specs().size(); i++) install(*e, end_sa(i, Direction::in));
  for (size_t i = 0; i < nexthop_specs().size(); i++) install(*e, nexthop_sa(i, Direction::in));
  e->table.set_local({kRelayGw, kEndGw});
  e->table.set_routes({{0, 0, 0}});
  return e;
}

static void relay_routes(EngineCore& e) {
  e.table.set_routes({{0, 0, relay_out_id(0)}, {kHmacRelayNet, 16, relay_out_id(1)}, {0xc0a80000, 16, 0}});
}

std::unique_ptr<EngineCore> make_relay() {
  auto e = std::make_unique<EngineCore>();
  for (size_t i = 0; i < nexthop_specs().size(); i++) install(*e, nexthop_sa(i, Direction::in));
  for (size_t i = 0; i < relay_specs().size(); i++) install(*e, relay_sa(i, Direction::out));
  e->table.set_local({kRelayGw});
  relay_routes(*e);
  return e;
}

// A few of each kind: skip and spi, with and without AH, both MACs, both coverages, MKIDs.
static const size_t kGatewayEnd[] = {0, 1, 2, 5, 8, 10, 12, 14};
static const size_t kGatewayNexthop[] = {0, 3, 5, 6};

std::unique_ptr<EngineCore> make_end(bool every_end_sa) {
  auto e = std::make_unique<EngineCore>();
  for (size_t i = 0; i < relay_specs().size(); i++) install(*e, relay_sa(i, Direction::in));
  if (every_end_sa) {
    for (size_t i = 0; i < end_specs().size(); i++) install(*e, end_sa(i, Direction::in));
  } else {
    for (size_t i : kGatewayEnd) install(*e, end_sa(i, Direction::in));
  }
  e->table.set_local({kEndGw});
  e->table.set_routes({{0, 0, 0}});
  return e;
}

// The gateway's end SAs at odd positions of kGatewayEnd accept 10/8 and 198.18/15 → 10.0/16 only.
static Selectors gateway_selectors() {
  Selectors s;
  s.on = true;
  s.src_count = 2;
  s.src[0] = {0x0a000000, 8};
  s.src[1] = {0xc6120000, 15};
  s.dst_count = 1;
  s.dst[0] = {0x0a000000, 16};
  return s;
}

static bool gateway_has_selectors(size_t position) { return position % 2 == 1; }
// Half of those punt a miss (selectorMiss 'punt') instead of dropping it.
static bool gateway_punts_selector_miss(size_t position) { return position % 4 == 3; }

bool is_nexthop_in(uint32_t id) { return id > kInOffset && id - kInOffset >= nexthop_out_id(0); }

bool gateway_selectors_admit(uint32_t id, const Bytes& d) {
  for (size_t k = 0; k < std::size(kGatewayEnd); k++) {
    if (end_out_id(kGatewayEnd[k]) + kInOffset != id || !gateway_has_selectors(k)) continue;
    return d.size() >= kIpv4MinHeader && gateway_selectors().admit(load32(d.data() + 12), load32(d.data() + 16));
  }
  return true;
}

bool gateway_selector_miss_punts(uint32_t id) {
  for (size_t k = 0; k < std::size(kGatewayEnd); k++)
    if (end_out_id(kGatewayEnd[k]) + kInOffset == id) return gateway_punts_selector_miss(k);
  return false;
}

static void successor_kijn(uint8_t* kijn) { fill(kijn, kKijnBytes, 0x5eed); }

SaConfig successor_of(const SaConfig& out, uint8_t seed) {
  SaConfig c = out;
  uint8_t kijn[kKijnBytes], kp[kPacketKeyBytes], keys[kPacketKeyBytes + 2 * kMaxKeyBytes];
  successor_kijn(kijn);
  fill(kp, sizeof kp, 0x4b50 + seed);
  if (!key_wrap(kijn, kp, sizeof kp, c.skip_header + kSkipFixed) ||
      !skip_packet_keys(kijn, c.skip_header + kSkipFixed, c.skip_header[9], c.esp_key_len, c.skip_header[10],
                        c.ah_key_len, keys)) {
    std::fprintf(stderr, "fuzz cast: no successor key (key wrap or BLAKE2b-512 missing)\n");
    std::abort();
  }
  std::memcpy(c.esp_key, keys + kPacketKeyBytes, c.esp_key_len);
  std::memcpy(c.ah_key, keys + kPacketKeyBytes + c.esp_key_len, c.ah_key_len);
  return c;
}

// G1's successor configuration: each of `in` that is an NSID-0 SKIP SA is a template, one Kijn for each counter.
static void gateway_successors(EngineCore& e, const std::vector<uint32_t>& in) {
  SuccessorConfig s;
  s.valid_until = UINT64_MAX;
  for (uint32_t id = kSuccessorIds; id < kSuccessorIds + 16; id++) s.ids.push_back(id);
  SuccessorPeer& peer = s.peers.emplace_back();
  peer.address = kSender;
  const auto tables = e.table.snapshot();
  for (uint32_t id : in) {
    const Sa* sa = tables->find(id);
    if (!sa || sa->cfg.direction != Direction::in || sa->cfg.mode != Mode::skip || sa->skip.src_nsid != 0) continue;
    peer.templates.push_back(id);
    auto& [n, kijn] = peer.kijns.emplace_back();
    n = sa->skip.n;
    successor_kijn(kijn.data());
  }
  e.successors.configure(std::move(s));
}

std::unique_ptr<EngineCore> make_gateway() {
  auto e = std::make_unique<EngineCore>();
  std::vector<uint32_t> in;
  for (size_t k = 0; k < std::size(kGatewayEnd); k++) {
    SaConfig c = end_sa(kGatewayEnd[k], Direction::in);
    in.push_back(c.id);
    if (gateway_has_selectors(k)) c.selectors = gateway_selectors();
    c.selector_miss = gateway_punts_selector_miss(k) ? SelectorMiss::punt : SelectorMiss::drop;
    install(*e, c);
  }
  for (size_t i : kGatewayNexthop) {
    SaConfig c = nexthop_sa(i, Direction::in);
    c.relay = i != kGatewayNexthop[1];  // one SA that never relays: relay_denied
    in.push_back(c.id);
    install(*e, c);
  }
  for (size_t i = 0; i < relay_specs().size(); i++) install(*e, relay_sa(i, Direction::out));
  e->table.set_local({kRelayGw});
  relay_routes(*e);
  gateway_successors(*e, in);
  return e;
}

Result run_op(EngineCore& e, Bytes& pkt, uint32_t op, uint32_t arg0, uint32_t arg1, size_t headroom, size_t tailroom) {
  Bytes slot(headroom + pkt.size() + tailroom);
  if (!pkt.empty()) std::memcpy(slot.data() + headroom, pkt.data(), pkt.size());
  uint32_t desc[kDescWords] = {op, arg0, arg1, uint32_t(headroom), uint32_t(pkt.size()), 0, 0, 0};
  e.process(BatchView{slot.data(), slot.size(), desc, 1, slot.size()});
  const Result r{Verdict(desc[D_VERDICT] & 0xff), Reason(desc[D_VERDICT] >> 8), desc[D_SA], desc[D_NEXTHOP]};
  if (r.verdict < V_FORWARD || r.verdict > V_DROP) finding("verdict outside 1..4");
  if ((r.verdict == V_FORWARD || r.verdict == V_DELIVER) != (r.reason == R_NONE))
    finding("verdict and reason disagree");
  if (r.verdict == V_DROP || r.verdict == V_PUNT) {
    // R_SELECTOR alone may be either: an SA with selectorMiss 'punt' punts it.
    if (verdict_for(r.reason) != r.verdict && !(r.reason == R_SELECTOR && r.verdict == V_PUNT))
      finding("punt/drop verdict does not match its reason");
  }
  if (r.verdict == V_DROP) return r;
  const size_t off = desc[D_OFFSET], len = desc[D_LENGTH];
  if (off > slot.size() || len > slot.size() - off) finding("output packet outside its slot");
  pkt.assign(slot.begin() + off, slot.begin() + off + len);
  return r;
}

Bytes datagram(size_t size, uint32_t src, uint32_t dst, uint8_t seed) {
  Bytes p(size);
  fill(p.data(), size, seed + 11);
  p[0] = 0x45;
  p[1] = 0x28;
  p[6] = 0x40;  // DF
  p[7] = 0;
  p[8] = 63;
  p[9] = 17;
  store32(p.data() + 12, src);
  store32(p.data() + 16, dst);
  repair_ipv4(p, true);
  return p;
}

void repair_ipv4(Bytes& p, bool clear_fragment) {
  if (p.size() < kIpv4MinHeader) return;
  size_t ihl = p[0] & 0x0f;
  if (ihl < 5 || ihl * 4 > p.size()) ihl = 5;
  p[0] = uint8_t(0x40 | ihl);
  const size_t total = p.size() > kMaxIpTotal ? kMaxIpTotal : p.size();
  store16(p.data() + 2, uint16_t(total));
  if (clear_fragment) store16(p.data() + 6, load16(p.data() + 6) & kIpv4Df);
  p[10] = p[11] = 0;
  store16(p.data() + 10, internet_checksum(p.data(), ihl * 4));
}

}  // namespace fuzz
