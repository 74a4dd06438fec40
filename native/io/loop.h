// The native I/O loop (DESIGN §1, §5, docs/engine.md §9): worker threads read batches through their ports — the
// TUN (tun.h), the raw IPv4 sockets (raw.h) and, with the UDP transport, a UDP socket (udp.h) — run them through the
// engine (TUN → OUTBOUND, raw/UDP → INBOUND) and hand each verdict to a port without entering JavaScript:
// FORWARD → the raw or UDP port, DELIVER → the TUN port (or by route: the raw port), PUNT → a PuntSink (the binding
// hands them to JS in batches), DROP → already counted by the engine. This file is the dispatcher; no Node-API here.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include "io/batch.h"
#include "io/fd.h"
#include "io/tun.h"
#include "xform/process.h"

namespace mipsec::io {

constexpr size_t kInjectQueuePackets = 4096;
constexpr unsigned kMaxWorkers = 64;
constexpr int kNiceInherited = 1000;

// What an injected packet goes through: the engine op of that side (then dispatched like a packet read
// there), or straight out of the TUN / raw socket as it is.
enum class Via : uint8_t { outbound = 0, inbound = 1, tun = 2, raw = 3 };

// Packets in one contiguous byte buffer with their metadata, for the punt and inject queues: nothing is allocated
// per packet. A batch is cleared and refilled, so its vectors keep their capacity (a high-water mark bounded by the
// queue's packet limit) instead of each packet's bytes being allocated on one thread and freed on another.
// After a burst, clear_and_trim() gives back a buffer far larger than what the last batch used; a steady load keeps
// its own.
constexpr size_t kQueueKeepBytes = 4 << 20;
inline void trim_bytes(std::vector<uint8_t>& bytes, size_t used) {
  if (bytes.capacity() > kQueueKeepBytes && used * 8 < bytes.capacity()) std::vector<uint8_t>().swap(bytes);
}

// What both queues are: the bytes, and per packet a Meta that starts with its offset and length there.
template <typename Meta>
struct PacketQueue {
  std::vector<uint8_t> bytes;
  std::vector<Meta> meta;
  size_t size() const { return meta.size(); }
  bool empty() const { return meta.empty(); }
  void clear() {
    bytes.clear();
    meta.clear();
  }
  // Clears the queue; gives its byte buffer back if it is far larger than the `used` bytes it held.
  void clear_and_trim(size_t used) {
    clear();
    trim_bytes(bytes, used);
  }
  const uint8_t* data(size_t i) const { return bytes.data() + meta[i].offset; }
};

struct PuntMeta {
  uint32_t offset, length, sa;
  uint8_t reason;
  From from;
};

struct PuntBatch : PacketQueue<PuntMeta> {
  void add(From from, uint8_t reason, uint32_t sa, const uint8_t* p, size_t len) {
    meta.push_back(PuntMeta{uint32_t(bytes.size()), uint32_t(len), sa, reason, from});
    bytes.insert(bytes.end(), p, p + len);
  }
  // Room for a packet of len bytes, appended: where to write it (valid until the next add).
  uint8_t* append(From from, size_t len) {
    meta.push_back(PuntMeta{uint32_t(bytes.size()), uint32_t(len), 0, 0, from});
    bytes.resize(bytes.size() + len);
    return bytes.data() + meta.back().offset;
  }
  // Packet i of other, appended.
  void add(const PuntBatch& other, size_t i) {
    const PuntMeta& m = other.meta[i];
    add(m.from, m.reason, m.sa, other.bytes.data() + m.offset, m.length);
  }
};

// An injected packet: `length` bytes at `offset`, then `quote_length` bytes of quote. Via::raw: the quote is the
// start of the datagram a sealed packet carries (header + 8 bytes), so that a link refusing the packet as too big
// can answer its sender with ICMP 3/4 as for the loop's own FORWARDs; none: no answer. The layout of inject()'s
// meta words (native/node/io_loop.cc, src/engine/io.ts).
struct InjectMeta {
  uint32_t offset, length, via, quote_length;
};
static_assert(sizeof(InjectMeta) == 16, "InjectMeta is four u32 words, as JS writes them");

struct InjectBatch : PacketQueue<InjectMeta> {
  void add(Via via, const uint8_t* p, size_t len, const uint8_t* quote, size_t quote_len) {
    meta.push_back(InjectMeta{uint32_t(bytes.size()), uint32_t(len), uint32_t(via), uint32_t(quote_len)});
    bytes.insert(bytes.end(), p, p + len);
    bytes.insert(bytes.end(), quote, quote + quote_len);
  }
};

// Receives punts from worker threads. offer() must not block for long; it copies the first packets of the batch
// that fit its bounded queue and returns how many it took (the loop counts the rest as punt_dropped).
class PuntSink {
 public:
  virtual ~PuntSink() = default;
  virtual size_t offer(const PuntBatch& packets) = 0;
};

// Punts handed to the sink, by reason code (the engine's reasons, R_DELIVER_LOCAL among them).
constexpr size_t kPuntReasonSlots = 64;

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
  // The TUN is a router's port: a DELIVER with an SA goes into it (coalesced) for the kernel to carry on by its
  // routes; one addressed to a local address of the engine is punted (R_DELIVER_LOCAL) with its SA, and ICMP 3/4 for
  // a packet read from the TUN leaves by the raw socket (the TUN carries a link's traffic).
  bool deliver_route = false;
  // With deliver_route: a DELIVER that is IP-in-IP from tunnel_from to a local address of the engine, carrying a
  // datagram to tunnel_to (an address the kernel owns), is peeled and the inner datagram written into the TUN for
  // the kernel to deliver (RFC 2003 decapsulation of a home agent's tunnel on the fast path). 0: none.
  uint32_t tunnel_from = 0;
  uint32_t tunnel_to = 0;
  // Only an inner datagram of this IP protocol is peeled (0: any); others are punted R_DELIVER_LOCAL as before.
  uint8_t tunnel_protocol = 0;
  // The workers' nice value (-20..19), set by each worker on itself; kNiceInherited: the starting thread's. A daemon
  // runs its control thread above its workers (status, registrations and new keys answered under a data-path
  // overload) and gives the workers its own base value, whatever the control thread has when a loop starts.
  int worker_nice = kNiceInherited;
  // A FORWARD the engine left plain (a bypass or pass, io/handoff.h) that was read from the TUN goes back into it,
  // coalesced, for the kernel to carry on by its routes, instead of one raw send per segment. The host must let the
  // kernel forward what arrives on the TUN (forwarding, and accept_local for the host's own sources).
  bool plain_by_kernel = false;
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
  // The offset of the inner datagram when `p` is the home agent's tunnel for tunnel_to (IoConfig), else 0.
  size_t home_tunnel_inner(const uint8_t* p, size_t len) const;
  // Joins the workers and closes every fd. Idempotent.
  void stop();
  bool running() const { return running_.load(); }
  // Queues packets for the worker that owns their flow (copied); returns how many were taken (queues are
  // bounded). meta[i] lies inside bytes (the caller checked), its quote at most kIcmpQuoteMax bytes.
  size_t inject(const uint8_t* bytes, const InjectMeta* meta, size_t n);
  uint64_t stat(Stat s) const { return stats_.get(s); }
  // Punts taken by the sink with this reason code.
  uint64_t punt_reason(size_t code) const {
    return code < kPuntReasonSlots ? punt_reasons_[code].load(std::memory_order_relaxed) : 0;
  }
  // CPU time the workers have used, µs: the running ones by their thread clocks, the stopped ones as they
  // left it. What a packet costs the data path is this over the packets handled.
  uint64_t cpu_micros();

 private:
  class Worker;
  std::string open(const IoConfig& cfg);

  std::shared_ptr<EngineCore> core_;
  std::shared_ptr<PuntSink> sink_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> running_{false};
  std::atomic<bool> stopping_{false};
  uint32_t poll_us_ = 0;
  int worker_nice_ = kNiceInherited;
  bool plain_by_kernel_ = false;
  bool deliver_route_ = false;
  uint32_t tunnel_from_ = 0, tunnel_to_ = 0;
  uint8_t tunnel_protocol_ = 0;
  std::mutex lifecycle_;
  std::function<void()> unclaim_;  // releases this loop's (engine, namespace, TUN, interface) claim
  LoopStats stats_;
  std::atomic<uint64_t> punt_reasons_[kPuntReasonSlots] = {};
  std::atomic<uint64_t> retired_cpu_ns_{0};
};

}  // namespace mipsec::io
