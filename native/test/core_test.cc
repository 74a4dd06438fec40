// The core without Node: an EngineCore and an io::IoLoop driven from plain C++, in a network namespace of its own
// (unshare; needs root). One loop, a TUN and loopback:
//   sealed  a UDP datagram the kernel routes into the TUN → OUTBOUND protect (ESP, 127.0.0.1 → 127.0.0.1) → raw
//           send → loopback → raw receive → INBOUND → DELIVER into the TUN, without a punt;
//   punted  a datagram no policy covers reaches the PuntSink as no_policy, from the TUN, byte for byte.
// Built and run by test/native/core.test.ts (make -C native test). Exit 0: every check held.
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include "io/handoff.h"
#include "io/loop.h"
#include "xform/process.h"

using namespace mipsec;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  if (!ok) failures++;
}

constexpr uint32_t kLoopback = 0x7f000001;  // 127.0.0.1, host order as the engine takes addresses
constexpr uint32_t kTunAddress = 0x0a090001;  // 10.9.0.1/24 on the TUN
constexpr uint32_t kSealedPeer = 0x0a090002;  // 10.9.0.2: the protect policy's destination
constexpr uint32_t kUncoveredPeer = 0x0a090003;  // 10.9.0.3: no policy
constexpr uint32_t kOutSa = 1, kInSa = 1001, kSpi = 0x1001;
const char kTunName[] = "mct0";

// Collects punts from the worker thread; wait() blocks until at least n arrived or the deadline passed.
class CollectingSink : public io::PuntSink {
 public:
  size_t offer(const io::PuntBatch& packets) override {
    std::lock_guard<std::mutex> hold(mu_);
    for (size_t i = 0; i < packets.size(); i++) taken_.add(packets, i);
    arrived_.notify_all();
    return packets.size();
  }
  io::PuntBatch wait(size_t n) {
    std::unique_lock<std::mutex> hold(mu_);
    arrived_.wait_for(hold, std::chrono::seconds(3), [&] { return taken_.size() >= n; });
    return taken_;
  }

 private:
  std::mutex mu_;
  std::condition_variable arrived_;
  io::PuntBatch taken_;
};

std::string bring_up_loopback() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq req{};
  std::strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = fd >= 0 && ::ioctl(fd, SIOCGIFFLAGS, &req) == 0;
  req.ifr_flags |= IFF_UP;
  ok = ok && ::ioctl(fd, SIOCSIFFLAGS, &req) == 0;
  const std::string err = ok ? "" : std::string("bringing lo up: ") + std::strerror(errno);
  if (fd >= 0) ::close(fd);
  return err;
}

SaConfig esp_sa(uint32_t id, Direction direction) {
  SaConfig c;
  c.id = id;
  c.direction = direction;
  c.role = Role::end;
  c.mode = Mode::spi;
  c.src = kLoopback;
  c.dst = kLoopback;
  c.esp_suite = AeadSuite::aes128gcm;
  c.esp_key_len = 20;
  for (size_t i = 0; i < c.esp_key_len; i++) c.esp_key[i] = uint8_t(0x40 + i);
  c.esp_spi = kSpi;
  return c;
}

// The engine's tables: the SA pair, 10.9.0.2/32 protected with it, nothing else in table 0.
std::string configure(EngineCore& engine) {
  for (const SaConfig& c : {esp_sa(kOutSa, Direction::out), esp_sa(kInSa, Direction::in)})
    if (std::string e = engine.table.install(c); !e.empty()) return "install sa " + std::to_string(c.id) + ": " + e;
  PolicyEntry protect;
  protect.network = kSealedPeer;
  protect.length = 32;
  protect.action = PA_PROTECT;
  protect.sa = kOutSa;
  if (std::string e = engine.table.set_policies({protect}, {}); !e.empty()) return "set_policies: " + e;
  engine.table.set_local({kLoopback, kTunAddress});
  return {};
}

// Sends one UDP datagram to `to`:port (the kernel routes it into the TUN).
bool send_udp(uint32_t to, uint16_t port, const std::string& payload) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port);
  dst.sin_addr.s_addr = htonl(to);
  const auto* to_addr = reinterpret_cast<const sockaddr*>(&dst);
  const ssize_t sent = fd >= 0 ? ::sendto(fd, payload.data(), payload.size(), 0, to_addr, sizeof dst) : -1;
  const bool ok = sent == ssize_t(payload.size());
  if (fd >= 0) ::close(fd);
  return ok;
}

bool wait_for(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

void sealed_round_trip(io::IoLoop& loop, EngineCore& engine) {
  const std::string payload = "sealed by the core test";
  check(send_udp(kSealedPeer, 9000, payload), "UDP datagram to 10.9.0.2 sent into the TUN");
  const bool delivered = wait_for([&] { return loop.stat(io::S_TX_TUN) >= 1; });
  const std::string tx_tun = std::to_string(loop.stat(io::S_TX_TUN));
  check(delivered, "the opened datagram was written back into the TUN (txTun " + tx_tun + ")");
  check(loop.stat(io::S_RX_TUN) >= 1, "read from the TUN (rxTun)");
  check(loop.stat(io::S_TX_RAW) >= 1, "sent sealed by the raw socket (txRaw)");
  check(loop.stat(io::S_RX_ESP) >= 1, "received as ESP on the raw socket (rxEsp)");
  check(loop.stat(io::S_FAST_PATH) >= 2, "FORWARD and DELIVER carried out without a punt (fastPath)");
  check(loop.stat(io::S_PUNTED) == 0, "nothing punted");
  const auto snapshot = engine.table.snapshot();
  check(snapshot->find(kOutSa)->stats().packets >= 1, "the out SA sealed it");
  check(snapshot->find(kInSa)->stats().packets >= 1, "the in SA opened it");
  const auto& counted = engine.counters->value;
  check(counted[kVerdictCounterBase + V_DELIVER].load() >= 1, "engine counted a DELIVER");
  check(counted[R_AUTH].load() == 0 && counted[R_REPLAY].load() == 0, "no auth or replay drop");
}

void punted_without_policy(io::IoLoop& loop, CollectingSink& sink) {
  const std::string payload = "no policy covers 10.9.0.3";
  check(send_udp(kUncoveredPeer, 9001, payload), "UDP datagram to 10.9.0.3 sent into the TUN");
  io::PuntBatch punts = sink.wait(1);
  check(punts.size() == 1, "one punt reached the sink (got " + std::to_string(punts.size()) + ")");
  if (punts.size() != 1) return;
  const io::PuntMeta& m = punts.meta[0];
  const uint8_t* p = punts.data(0);
  check(m.reason == R_NO_POLICY, "reason no_policy (got " + std::to_string(m.reason) + ")");
  check(m.from == io::From::tun && m.sa == 0, "from the TUN, no SA");
  check(m.length == 20 + 8 + payload.size() && be32(p + 12) == kTunAddress && be32(p + 16) == kUncoveredPeer,
        "the datagram as the kernel sent it: 10.9.0.1 → 10.9.0.3");
  check(std::memcmp(p + 28, payload.data(), payload.size()) == 0, "its payload byte for byte");
  // The worker counts a punt once the sink has taken it.
  check(wait_for([&] { return loop.stat(io::S_PUNTED) == 1; }), "punted counted once");
}

// io/handoff.h, pure: which FORWARDs go back to the kernel, and the TTL they are given for its decrement.
void plain_handoff() {
  auto datagram = [](uint8_t proto, uint8_t ttl) {
    std::vector<uint8_t> p(28, 0);
    p[0] = 0x45;
    store16(p.data() + 2, 28);
    p[8] = ttl;
    p[9] = proto;
    store32(p.data() + 12, kTunAddress);
    store32(p.data() + 16, kUncoveredPeer);
    store16(p.data() + 10, uint16_t(~ones_complement_sum(p.data(), 20)));
    return p;
  };
  std::vector<uint8_t> udp = datagram(17, 64);
  check(io::plain_for_kernel(udp.data(), udp.size(), 0, kUncoveredPeer), "a plain UDP FORWARD goes to the kernel");
  check(udp[8] == 65 && uint16_t(~ones_complement_sum(udp.data(), 20)) == 0,
        "given one TTL more for the kernel to take, its header checksum still right");
  for (uint8_t layer : {uint8_t(PROTO_SKIP), uint8_t(PROTO_AH), uint8_t(PROTO_ESP), uint8_t(PROTO_IPIP)}) {
    std::vector<uint8_t> p = datagram(layer, 64), before = p;
    check(!io::plain_for_kernel(p.data(), p.size(), 0, kUncoveredPeer) && p == before,
          "protocol " + std::to_string(layer) + " (a layer) is sent as it is");
  }
  std::vector<uint8_t> p = datagram(17, 64), before = p;
  check(!io::plain_for_kernel(p.data(), p.size(), kOutSa, kUncoveredPeer) && p == before, "a sealed one (SA) is not");
  check(!io::plain_for_kernel(p.data(), p.size(), 0, kSealedPeer) && p == before, "nor one for another next hop");
  p = datagram(17, 255);
  before = p;
  check(!io::plain_for_kernel(p.data(), p.size(), 0, kUncoveredPeer) && p == before, "nor TTL 255");
  check(!io::plain_for_kernel(p.data(), 19, 0, kUncoveredPeer), "nor a packet shorter than a header");
}

}  // namespace

int main() {
  plain_handoff();
  if (::unshare(CLONE_NEWNET) != 0) {
    std::printf("FAIL unshare(CLONE_NEWNET): %s (run as root)\n", std::strerror(errno));
    return 1;
  }
  if (std::string e = bring_up_loopback(); !e.empty()) {
    std::printf("FAIL %s\n", e.c_str());
    return 1;
  }
  auto engine = std::make_shared<EngineCore>();
  if (std::string e = configure(*engine); !e.empty()) {
    std::printf("FAIL %s\n", e.c_str());
    return 1;
  }
  auto sink = std::make_shared<CollectingSink>();
  io::IoConfig cfg;
  cfg.tun.name = kTunName;
  cfg.tun.offload = false;
  cfg.tun.addresses.push_back(io::TunAddress{kTunAddress, 24});
  {
    io::IoLoop loop(engine, sink);
    const std::string err = loop.start(cfg);
    check(err.empty(), "IoLoop started in the test namespace" + (err.empty() ? "" : ": " + err));
    if (!err.empty()) return 1;
    check(::if_nametoindex(kTunName) != 0, "TUN " + std::string(kTunName) + " exists");
    sealed_round_trip(loop, *engine);
    punted_without_policy(loop, *sink);
    loop.stop();
    check(!loop.running(), "stopped");
  }
  check(::if_nametoindex(kTunName) == 0, "the TUN is gone after stop");
  std::printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
