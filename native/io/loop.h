// The native I/O loop (DESIGN §1, §5): worker threads read batches from a TUN device and raw IPv4 sockets,
// (and, with the UDP transport, a UDP socket), run them through the engine (TUN → OUTBOUND, raw/UDP → INBOUND)
// and write the results without entering JavaScript: FORWARD → sendmmsg on the raw socket (or UDP, udp.h), DELIVER → write to the TUN, PUNT → a PuntSink (the
// binding hands them to JS in batches), DROP → already counted by the engine. No Node-API here.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include "io/fd.h"
#include "io/tun.h"
#include "xform/process.h"

namespace mipsec::io {

// Batch geometry of a worker: slots of kSlotBytes with kHeadroom bytes in front for the outer layers and
// kTailroom behind for the ESP trailer, so a packet read may be at most kMaxPacket bytes (the TUN MTU cap).
constexpr size_t kBatchPackets = 64;
constexpr size_t kSlotBytes = 4096;
constexpr size_t kHeadroom = 512;
constexpr size_t kTailroom = 64;
constexpr size_t kMaxPacket = kSlotBytes - kHeadroom - kTailroom;
constexpr size_t kInjectQueuePackets = 4096;
constexpr size_t kIcmpQuoteMax = 60 + 8;  // an IPv4 header with options and 8 bytes of its payload
constexpr unsigned kMaxWorkers = 64;

enum class From : uint8_t { tun = 0, raw = 1 };
// What an injected packet goes through: the engine op of that side (then dispatched like a packet read
// there), or straight out of the TUN / raw socket as it is.
enum class Via : uint8_t { outbound = 0, inbound = 1, tun = 2, raw = 3 };

struct PuntPacket {
  From from;
  uint8_t reason;
  uint32_t sa;
  std::vector<uint8_t> bytes;
};

struct Injected {
  Via via;
  std::vector<uint8_t> bytes;
  // Via::raw: the start of the datagram a sealed packet carries (header + 8 bytes), so that a link refusing the
  // packet as too big can answer its sender with ICMP 3/4 as for the loop's own FORWARDs. Empty: no answer.
  std::vector<uint8_t> quote;
};

// Receives punts from worker threads. offer() must not block for long; it takes what fits its bounded
// queue and returns how many it took (the loop counts the rest as punt_dropped).
class PuntSink {
 public:
  virtual ~PuntSink() = default;
  virtual size_t offer(std::vector<PuntPacket>&& packets) = 0;
};

// Loop counters, as named by stat_names().
enum Stat : int {
  S_RX_TUN, S_RX_GSO, S_RX_RAW, S_RX_SKIP, S_RX_AH, S_RX_ESP, S_RX_IPIP, S_RX_TOO_BIG, S_RX_ERRORS,
  S_TX_RAW, S_TX_TUN, S_TX_GRO, S_TX_TOO_BIG, S_TX_FRAG_NEEDED, S_TX_ERRORS, S_PUNTED, S_PUNT_DROPPED, S_INJECTED, S_INJECT_DROPPED,
  S_RX_UDP, S_RX_UDP_GRO, S_TX_UDP, S_TX_UDP_GSO, S_RX_UNAUTHENTICATED, S_RX_UDP_MISADDRESSED,
  S_RX_FOREIGN_INTERFACE, S_FAST_PATH, S_COUNT
};
// Punts handed to the sink, by reason code (the engine's reasons, R_DELIVER_LOCAL among them).
constexpr size_t kPuntReasonSlots = 64;
const char* const* stat_names();

struct IoConfig {
  std::string netns;  // empty: the process's own namespace
  TunConfig tun;
  unsigned workers = 1;
  uint16_t udp_port = 0;  // the UDP transport's port (udp.h); 0: the raw socket carries everything
  // After handling packets, a worker keeps polling its fds this long (yielding the CPU to anything runnable)
  // before it sleeps: a packet that comes within it costs no wakeup. 0: sleep at once.
  uint32_t poll_us = 0;
  // Non-empty: the raw receivers and the UDP transport take only what arrived on this interface; the rest is
  // counted (rxForeignInterface) and never reaches the engine.
  std::string bind_device;
  // OUTBOUND's arg0 (the policy table) for TUN reads and Via::outbound injects.
  uint32_t tun_table = 0;
  // A DELIVER with an SA leaves by the raw socket to its destination (the kernel routes it) instead of into the
  // TUN; one addressed to a local address of the engine is punted (R_DELIVER_LOCAL) with its SA.
  bool deliver_route = false;
};

class IoLoop {
 public:
  IoLoop(std::shared_ptr<EngineCore> core, std::shared_ptr<PuntSink> sink);
  ~IoLoop();
  IoLoop(const IoLoop&) = delete;
  IoLoop& operator=(const IoLoop&) = delete;

  // Opens every fd (inside cfg.netns), configures the TUN and starts the workers. Empty on success, else
  // why (and nothing is left open). Call once. Several loops may share one engine, one per interface: in one
  // namespace each must then be bound to its own (cfg.bind_device), and no two running loops may name one TUN.
  std::string start(const IoConfig& cfg);
  // Joins the workers and closes every fd. Idempotent.
  void stop();
  bool running() const { return running_.load(); }
  // Queues packets for the worker that owns their flow; returns how many were taken (queues are bounded).
  size_t inject(std::vector<Injected>&& packets);
  uint64_t stat(Stat s) const { return stats_[s].load(std::memory_order_relaxed); }
  // Punts taken by the sink with this reason code.
  uint64_t punt_reason(size_t code) const { return code < kPuntReasonSlots ? punt_reasons_[code].load(std::memory_order_relaxed) : 0; }
  // CPU time the workers have used, µs: the running ones by their thread clocks, the stopped ones as they
  // left it. What a packet costs the data path is this over the packets handled.
  uint64_t cpu_micros();

 private:
  struct Worker;
  std::string open(const IoConfig& cfg);
  void run(Worker& w);
  void count(Stat s, uint64_t n = 1) { stats_[s].fetch_add(n, std::memory_order_relaxed); }

  std::shared_ptr<EngineCore> core_;
  std::shared_ptr<PuntSink> sink_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> running_{false};
  std::atomic<bool> stopping_{false};
  uint32_t poll_us_ = 0;
  uint32_t tun_table_ = 0;
  bool deliver_route_ = false;
  std::mutex lifecycle_;
  std::function<void()> unclaim_;  // releases this loop's (engine, namespace, TUN, interface) claim
  std::atomic<uint64_t> stats_[S_COUNT] = {};
  std::atomic<uint64_t> punt_reasons_[kPuntReasonSlots] = {};
  std::atomic<uint64_t> retired_cpu_ns_{0};
};

}  // namespace mipsec::io
