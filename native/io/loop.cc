#include "io/loop.h"
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <time.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>
#include <chrono>
#include <list>
#include <optional>
#include "io/handoff.h"
#include "io/netns.h"
#include "io/raw.h"
#include "io/udp.h"
#include "wire/bytes.h"
#include "wire/fragment.h"
#include "wire/icmp.h"
#include "wire/ipv4.h"
#include "wire/skip.h"

namespace mipsec::io {

const char* const* stat_names() {
  static const char* const names[S_COUNT] = {
      "rxTun",
      "rxGso",
      "rxRaw",
      "rxSkip",
      "rxAh",
      "rxEsp",
      "rxIpip",
      "rxTooBig",
      "rxErrors",
      "txRaw",
      "txTun",
      "txGro",
      "txTooBig",
      "txFragNeeded",
      "txErrors",
      "punted",
      "puntDropped",
      "injected",
      "injectDropped",
      "rxUdp",
      "rxUdpGro",
      "txUdp",
      "txUdpGso",
      "rxUnauthenticated",
      "rxUdpMisaddressed",
      "rxForeignInterface",
      "fastPath",
      "heldForKey",
      "heldExpired",
      "txSplit",
      "niceRefused",
      "txKernel",
  };
  return names;
}

namespace {

constexpr uint32_t kTagWake = 0, kTagTun = 1, kTagRaw = 2;  // epoll tags; raw socket i is kTagRaw + i
constexpr uint32_t kTagUdp = kTagRaw + kRawSockets;
// A worker that handled more packets than this within one poll window is under load: it sleeps when idle.
constexpr uint64_t kPollMaxPackets = 64;
// Fresh-key punts per worker and epoch, in all and per source bucket (Worker::shed_fresh_key_punts).
constexpr uint64_t kPuntEpochNs = 100'000'000;
constexpr uint32_t kFreshKeyPuntsPerEpoch = 64;
constexpr uint16_t kFreshKeyPuntsPerSource = 8;
constexpr unsigned kPuntSourceBucketBits = 8;
constexpr size_t kPuntSourceBuckets = size_t(1) << kPuntSourceBucketBits;
// Packets of a key whose first packet went to the control plane less than kHoldNs ago wait in the worker (at most
// kHeldPackets) instead of following it there; kPendingKeys such keys are remembered per worker. kHoldNs covers a
// daemon's first keys before its JavaScript is optimised (10–50 ms) and a certificate fetched across a WAN.
constexpr uint64_t kHoldNs = 100'000'000;
constexpr size_t kHeldPackets = 1024;
constexpr size_t kPendingKeys = 16;

uint64_t steady_ns() { return uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()); }

std::string sys_error(const std::string& what) { return what + ": " + std::strerror(errno); }

uint64_t nanoseconds(const timespec& t) { return uint64_t(t.tv_sec) * 1000000000u + uint64_t(t.tv_nsec); }

// The running loops of this process, by (engine, namespace, TUN, bound interface): several loops may share one
// engine (one per interface of a node), but two loops of one engine in one namespace would each read every packet
// of the raw sockets that the other's interface takes — unless each is bound to its own interface — and two loops
// naming one TUN in one namespace would silently share the device.
struct Claim {
  const EngineCore* core;
  std::string netns, tun, device;
};
std::mutex claims_mu;
std::list<Claim> claims;

std::string claim(const EngineCore* core, const IoConfig& cfg, std::list<Claim>::iterator* out) {
  std::lock_guard<std::mutex> hold(claims_mu);
  for (const Claim& c : claims) {
    if (c.netns != cfg.netns) continue;
    if (c.tun == cfg.tun.name) return "another running I/O loop uses TUN " + cfg.tun.name + " in this namespace";
    if (c.core == core && (c.device.empty() || cfg.bind_device.empty() || c.device == cfg.bind_device))
      return "another I/O loop of this engine already reads " +
             (c.device.empty() ? std::string("every interface") : "interface " + c.device) +
             " in this namespace: loops sharing an engine must each be bound to their own interface (bindInterface)";
  }
  *out = claims.insert(claims.end(), Claim{core, cfg.netns, cfg.tun.name, cfg.bind_device});
  return {};
}

void unclaim(std::list<Claim>::iterator it) {
  std::lock_guard<std::mutex> hold(claims_mu);
  claims.erase(it);
}

}  // namespace

// One worker: its own ports (TUN queue, raw receivers filtered to its flows and sender, UDP socket), batch, punt
// and inject queues and thread. run() waits on its fds and dispatches: a port reads into the batch, flush() runs it
// through the engine and hands each verdict to a port.
class IoLoop::Worker {
 public:
  Worker(IoLoop& loop, unsigned index, uint32_t table, bool deliver_route) : index(index), loop_(loop), batch_(table) {
    batch_.flush = [this] { flush(); };
    if (deliver_route) batch_.divert = [this](const uint8_t* p, size_t len) { return punted_fragment(p, len); };
  }

  const unsigned index;
  Fd epoll, wake;
  Fd mtu_probe;  // a UDP socket in the loop's namespace, to ask the kernel the path MTU toward a next hop
  std::optional<TunPort> tun;
  std::optional<RawPort> raw;
  std::optional<UdpPort> udp;  // the UDP transport (udp.h), when configured
  std::thread thread;

  std::mutex inject_mu;
  InjectBatch injects;  // filled by inject() under inject_mu; bounded by kInjectQueuePackets

  void run();

 private:
  void flush();
  void offer_punts();
  size_t shed_fresh_key_punts();
  bool held_for_pending_key(size_t i, uint64_t now);
  void release_held();
  bool punted_fragment(const uint8_t* p, size_t len);
  void drain_injects();
  void send_injected(const uint8_t* p, size_t len, const uint8_t* quote, size_t quote_len);
  void refused(int err, const uint8_t* quote, size_t quote_len, size_t on_wire, uint32_t nexthop, From back);
  void refused_in_batch(int err, size_t i, size_t on_wire);
  long fits_toward(uint32_t nexthop, long added);
  bool split(size_t i, size_t on_wire);
  void requeue_split();
  void frag_needed(const uint8_t* quote, size_t quote_len, size_t sealed_len, uint32_t nexthop, From back);
  // Whether a packet leaving by the network side goes over the UDP transport (when configured, for its protocols).
  bool carried_by_udp(const uint8_t* p, size_t len) const { return udp && len >= 20 && udp_carries(p[9]); }
  void count(Stat s, uint64_t n = 1) { loop_.stats_.add(s, n); }

  IoLoop& loop_;
  Batch batch_;
  // This batch's punts (and fragments read before it), offered to the sink after it (cleared, capacity kept).
  PuntBatch punts_;
  PuntBatch kept_punts_;  // punts_ reordered by shed_fresh_key_punts() (swapped with it, capacity kept)
  // Fresh-key punts offered in this epoch: in all, and per source bucket (shed_fresh_key_punts).
  uint64_t punt_epoch_ = 0;
  uint32_t fresh_key_punts_ = 0;
  uint16_t fresh_key_punts_from_[kPuntSourceBuckets] = {};
  // Keys whose first packet was punted (hash of the SKIP key, when), and the packets that came after it under them,
  // with when each came; held_under_ is the tables they met: when those change (an SA went in), they run again.
  struct PendingKey {
    size_t hash;
    uint64_t since;
  };
  PendingKey pending_keys_[kPendingKeys] = {};
  size_t pending_next_ = 0;
  PuntBatch held_;
  std::vector<uint64_t> held_since_;
  std::shared_ptr<const Tables> held_under_, last_tables_;
  InjectBatch injecting_;  // swapped with `injects`, sent, cleared (both keep their capacity)
  PuntBatch split_;  // pieces of datagrams the link refused sealed (split()), sealed again after the batch
  size_t delivered_[kBatchPackets] = {};  // batch indices of the DELIVER packets for the TUN, in order
  Refusal refusals_[kBatchPackets] = {};
  uint64_t handled_ = 0;  // packets run through the engine so far
};

IoLoop::IoLoop(std::shared_ptr<EngineCore> core, std::shared_ptr<PuntSink> sink)
    : core_(std::move(core)), sink_(std::move(sink)) {}

IoLoop::~IoLoop() { stop(); }

std::string IoLoop::start(const IoConfig& cfg) {
  std::lock_guard<std::mutex> hold(lifecycle_);
  if (!workers_.empty() || stopping_) return "this I/O loop was already started (create a new one)";
  if (cfg.workers < 1 || cfg.workers > kMaxWorkers) return "workers must be 1.." + std::to_string(kMaxWorkers);
  if (cfg.worker_nice != kNiceInherited && (cfg.worker_nice < -20 || cfg.worker_nice > 19))
    return "worker nice must be -20..19";
  if (cfg.tun.mtu < 576 || cfg.tun.mtu > kMaxPacket)
    return "tun.mtu must be 576.." + std::to_string(kMaxPacket) + " (the batch slot size)";

  std::list<Claim>::iterator claimed;
  if (std::string e = claim(core_.get(), cfg, &claimed); !e.empty()) return e;
  std::string err = open(cfg);
  if (err.empty())
    unclaim_ = [claimed] { unclaim(claimed); };
  else
    unclaim(claimed);
  return err;
}

std::string IoLoop::open(const IoConfig& cfg) {
  std::vector<std::unique_ptr<Worker>> workers;
  for (unsigned i = 0; i < cfg.workers; i++)
    workers.push_back(std::make_unique<Worker>(*this, i, cfg.tun_table, cfg.deliver_route));
  std::string err = run_in_netns(cfg.netns, [&]() -> std::string {
    const unsigned ifindex = cfg.bind_device.empty() ? 0 : ::if_nametoindex(cfg.bind_device.c_str());
    if (!cfg.bind_device.empty() && ifindex == 0) return sys_error("bind interface " + cfg.bind_device);
    std::vector<Fd> queues;
    if (std::string e = tun_open(cfg.tun, cfg.workers, &queues); !e.empty()) return e;
    if (std::string e = tun_configure(cfg.tun); !e.empty()) return e;
    for (unsigned i = 0; i < cfg.workers; i++) {
      Worker& w = *workers[i];
      w.tun.emplace(std::move(queues[i]), cfg.tun.offload, stats_);
      Fd rx[kRawSockets], tx;
      for (size_t s = 0; s < kRawSockets; s++)
        if (std::string e = raw_open_receiver(kRawProtocols[s], i, cfg.workers, &rx[s]); !e.empty()) return e;
      if (std::string e = raw_open_sender(&tx); !e.empty()) return e;
      w.raw.emplace(rx, std::move(tx), ifindex, stats_);
      if (cfg.udp_port) {
        Fd udp;
        if (std::string e = udp_open(cfg.udp_port, cfg.bind_device, &udp); !e.empty()) return e;
        // Bound to the interface, the socket would also send only through it, while a node's loops send toward
        // their peers by the kernel's routes: sends then go from an unbound socket (an ephemeral port).
        Fd udp_tx;
        if (!cfg.bind_device.empty())
          if (std::string e = udp_open(0, "", &udp_tx); !e.empty()) return e;
        w.udp.emplace(std::move(udp), std::move(udp_tx), cfg.udp_port, ifindex, stats_);
      }
      w.mtu_probe.reset(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
      if (!w.mtu_probe.valid()) return sys_error("socket(AF_INET, SOCK_DGRAM) for path MTU queries");
    }
    return {};
  });
  if (!err.empty()) return err;  // workers (and every fd opened so far) are closed on return

  for (auto& wp : workers) {
    Worker& w = *wp;
    w.epoll.reset(::epoll_create1(EPOLL_CLOEXEC));
    w.wake.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!w.epoll.valid() || !w.wake.valid()) return sys_error("epoll/eventfd");
    auto watch = [&](int fd, uint32_t tag) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = tag;
      return ::epoll_ctl(w.epoll.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
    };
    bool ok = watch(w.wake.get(), kTagWake) && watch(w.tun->fd(), kTagTun);
    for (size_t s = 0; s < kRawSockets; s++) ok = ok && watch(w.raw->rx_fd(s), kTagRaw + uint32_t(s));
    if (w.udp) ok = ok && watch(w.udp->fd(), kTagUdp);
    if (!ok) return sys_error("epoll_ctl");
  }
  workers_ = std::move(workers);
  poll_us_ = cfg.poll_us;
  worker_nice_ = cfg.worker_nice;
  plain_by_kernel_ = cfg.plain_by_kernel;
  deliver_route_ = cfg.deliver_route;
  tunnel_from_ = cfg.tunnel_from;
  tunnel_to_ = cfg.tunnel_to;
  tunnel_protocol_ = cfg.tunnel_protocol;
  running_ = true;
  for (auto& wp : workers_) {
    Worker* w = wp.get();
    w->thread = std::thread([w] { w->run(); });
    const std::string name = "mipsec-io" + std::to_string(w->index);
    pthread_setname_np(w->thread.native_handle(), name.c_str());
  }
  return {};
}

void IoLoop::stop() {
  std::lock_guard<std::mutex> hold(lifecycle_);
  stopping_ = true;
  const uint64_t one = 1;
  for (auto& w : workers_)
    if (w->thread.joinable() && ::write(w->wake.get(), &one, sizeof one) < 0) stats_.add(S_TX_ERRORS);
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
  workers_.clear();  // closes every fd; the TUN device goes away with its last queue
  running_ = false;
  if (unclaim_) unclaim_();
  unclaim_ = nullptr;
}

size_t IoLoop::inject(const uint8_t* bytes, const InjectMeta* meta, size_t count_in) {
  std::lock_guard<std::mutex> hold(lifecycle_);
  if (!running_ || stopping_) return 0;
  const unsigned n = unsigned(workers_.size());
  static_assert(kMaxWorkers <= 64, "one bit per worker");
  uint64_t woken = 0;
  size_t taken = 0;
  for (size_t i = 0; i < count_in; i++) {
    const InjectMeta& m = meta[i];
    const uint8_t* p = bytes + m.offset;
    const unsigned wi = m.length >= 20 ? flow_worker(load32(p + 12), load32(p + 16), n) : 0;
    Worker& w = *workers_[wi];
    std::lock_guard<std::mutex> q(w.inject_mu);
    if (m.length > kMaxPacket || w.injects.size() >= kInjectQueuePackets) {
      stats_.add(S_INJECT_DROPPED);
      continue;
    }
    w.injects.add(Via(m.via), p, m.length, p + m.length, std::min<size_t>(m.quote_length, kIcmpQuoteMax));
    woken |= uint64_t(1) << wi;
    taken++;
  }
  const uint64_t one = 1;
  for (unsigned i = 0; i < n; i++)
    if ((woken >> i & 1) && ::write(workers_[i]->wake.get(), &one, sizeof one) < 0) stats_.add(S_TX_ERRORS);
  stats_.add(S_INJECTED, taken);
  return taken;
}

uint64_t IoLoop::cpu_micros() {
  std::lock_guard<std::mutex> hold(lifecycle_);  // stop() joins under it: a worker is live or retired, never both
  uint64_t ns = retired_cpu_ns_.load();
  for (auto& w : workers_) {
    clockid_t clock;
    timespec t{};
    if (w->thread.joinable() && pthread_getcpuclockid(w->thread.native_handle(), &clock) == 0 &&
        clock_gettime(clock, &t) == 0)
      ns += nanoseconds(t);
  }
  return ns / 1000;
}

// RFC 2003 §6.2, as the SMN's JS tunnel endpoint checks it (src/roles/registration.ts): a whole IP-in-IP datagram
// (no fragment) from the configured home agent whose inner datagram is a whole IPv4 header and total length inside it,
// addressed to the configured address, TTL not zero (ipip_whole_inner), of the configured protocol if one is set.
// Returns the inner datagram's offset, 0 when it is not one.
size_t IoLoop::home_tunnel_inner(const uint8_t* p, size_t len) const {
  if (tunnel_from_ == 0 || len < 2 * kIpv4MinHeader || load32(p + 12) != tunnel_from_) return 0;
  const size_t ihl = ipip_whole_inner(p, len);
  if (ihl == 0 || load32(p + ihl + 16) != tunnel_to_) return 0;
  return tunnel_protocol_ == 0 || p[ihl + 9] == tunnel_protocol_ ? ihl : 0;
}

// Runs the queued batch through the engine and hands each result to the port its verdict names.
void IoLoop::Worker::flush() {
  if (batch_.count() == 0) return offer_punts();
  const size_t n = batch_.take();
  handled_ += n;
  // One snapshot for the batch and for the local-address check of DELIVERs sent by route.
  const std::shared_ptr<const Tables> tables = loop_.core_->table.snapshot();
  last_tables_ = tables;
  loop_.core_->process(BatchView{batch_.buffer(), batch_.buffer_size(), batch_.desc(), n, kSlotBytes}, *tables);
  size_t nd = 0, fast = 0;
  for (size_t i = 0; i < n; i++) {
    const uint32_t* d = batch_.desc(i);
    const uint8_t* data = batch_.data(i);
    const size_t len = batch_.length(i);
    switch (Verdict(d[D_VERDICT] & 0xff)) {
      case V_FORWARD:
        fast++;
        // An SA reached its soft limit sealing this packet: the control plane hears of it as a punt without bytes.
        if ((d[D_VERDICT] >> 8) == R_REKEY_DUE) punts_.add(batch_.from(i), uint8_t(R_REKEY_DUE), d[D_SA], data, 0);
        if (loop_.plain_by_kernel_ && batch_.from(i) == From::tun &&
            plain_for_kernel(batch_.data(i), len, d[D_SA], d[D_NEXTHOP])) {
          count(S_TX_KERNEL);
          delivered_[nd++] = i;
        } else if (carried_by_udp(data, len))
          udp->add(i);
        else
          raw->add(i, data, len, d[D_NEXTHOP]);
        break;
      case V_DELIVER:
        if (loop_.deliver_route_ && d[D_SA] != 0) {
          // By route: into the TUN (coalesced like any delivery), whose kernel forwards it on toward its destination.
          // One for this node itself is the control plane's (the kernel's own reply would leave in clear), and so is
          // one whose TTL runs out here (the kernel's ICMP "time exceeded" would too).
          const uint32_t dst = len >= 20 ? load32(data + 16) : 0;
          uint8_t reason = len < 20 || tables->is_local(dst) ? uint8_t(R_DELIVER_LOCAL)
                           : data[8] <= 1                    ? uint8_t(R_TTL_EXCEEDED)
                                                             : 0;
          size_t inner_at = 0;
          if (reason == R_DELIVER_LOCAL && (inner_at = loop_.home_tunnel_inner(data, len)) != 0) {
            // The home agent's tunnel to us, for an address the kernel owns: its inner datagram goes into the TUN.
            uint32_t* dm = batch_.desc(i);
            dm[D_OFFSET] += uint32_t(inner_at);
            dm[D_LENGTH] = uint32_t(load16(data + inner_at + 2));
            reason = 0;
          }
          if (reason) {
            punts_.add(batch_.from(i), reason, d[D_SA], data, len);
            break;
          }
        }
        fast++;
        delivered_[nd++] = i;
        break;
      case V_PUNT:
        // INBOUND (as an op or a policy's action) punts the datagram it peeled out of bare IP-in-IP as not_ipsec:
        // no SA authenticated it, so it goes to JS, never into the TUN.
        if ((d[D_VERDICT] >> 8) == R_NOT_IPSEC && d[D_OFFSET] != i * kSlotBytes + kHeadroom)
          count(S_RX_UNAUTHENTICATED);
        punts_.add(batch_.from(i), uint8_t(d[D_VERDICT] >> 8), d[D_SA], data, len);
        break;
      default:  // DROP: the engine counted it by reason
        fast++;
        break;
    }
  }
  for (size_t k = 0, nr = raw->send(refusals_); k < nr; k++)
    refused_in_batch(refusals_[k].err, refusals_[k].index, batch_.length(refusals_[k].index));
  if (udp)
    for (size_t k = 0, nr = udp->send(batch_, refusals_); k < nr; k++)
      refused_in_batch(refusals_[k].err, refusals_[k].index, batch_.length(refusals_[k].index) + kUdpOverhead);
  tun->write_batch(batch_, delivered_, nd);
  count(S_FAST_PATH, fast);
  offer_punts();
  requeue_split();
}

// The pieces split() made go through OUTBOUND again, each sealed on its own (they fit: a piece the link refuses
// anyway, the path having shrunk meanwhile, is split again, smaller).
void IoLoop::Worker::requeue_split() {
  if (split_.empty()) return;
  for (size_t j = 0; j < split_.size(); j++) {
    batch_.make_room(1);
    std::memcpy(batch_.next_slot(), split_.data(j), split_.meta[j].length);
    batch_.queue(OP_OUTBOUND, split_.meta[j].length, From::tun);
  }
  split_.clear();
  flush();
}

// Hands the punts gathered so far to the sink: a batch's, and the fragments read before it.
void IoLoop::Worker::offer_punts() {
  if (punts_.empty()) return;
  const size_t shed = shed_fresh_key_punts();
  const size_t total = punts_.size();
  const size_t taken = total ? loop_.sink_->offer(punts_) : 0;
  // The sink takes a prefix of the batch.
  for (size_t k = 0; k < taken; k++)
    loop_.punt_reasons_[punts_.meta[k].reason % kPuntReasonSlots].fetch_add(1, std::memory_order_relaxed);
  punts_.clear();
  count(S_PUNTED, taken);
  count(S_PUNT_DROPPED, total - taken + shed);
}

// The first packet of a key no SA vouches for (unknown_key with no verified outer layer) costs the control plane a
// keying attempt, and anyone may send one from any address: per worker, at most kFreshKeyPuntsPerEpoch of them go on
// each kPuntEpochNs, one source (hashed into kPuntSourceBuckets) at most kFreshKeyPuntsPerSource — so a flood neither
// fills the bounded queue nor keeps the control plane from the rest. Every other punt goes first, in its order (a new
// key opened under a peer's verified Next-hop layer among them); what is shed counts as puntDropped.
size_t IoLoop::Worker::shed_fresh_key_punts() {
  const uint64_t now = steady_ns();
  const uint64_t epoch = now / kPuntEpochNs;
  if (epoch != punt_epoch_) {
    punt_epoch_ = epoch;
    fresh_key_punts_ = 0;
    std::fill(std::begin(fresh_key_punts_from_), std::end(fresh_key_punts_from_), uint16_t(0));
  }
  const auto fresh = [this](size_t i) { return punts_.meta[i].reason == R_UNKNOWN_KEY && punts_.meta[i].sa == 0; };
  size_t shed = 0;
  kept_punts_.clear();
  for (size_t i = 0; i < punts_.size(); i++)
    if (!fresh(i)) kept_punts_.add(punts_, i);
  for (size_t i = 0; i < punts_.size(); i++) {
    if (!fresh(i) || held_for_pending_key(i, now)) continue;
    const PuntMeta& m = punts_.meta[i];
    const uint32_t src = m.length >= 20 ? load32(punts_.data(i) + 12) : 0;
    uint16_t& from = fresh_key_punts_from_[(src * 2654435761u) >> (32 - kPuntSourceBucketBits)];
    if (fresh_key_punts_ >= kFreshKeyPuntsPerEpoch || from >= kFreshKeyPuntsPerSource) {
      shed++;
      continue;
    }
    fresh_key_punts_++;
    from++;
    kept_punts_.add(punts_, i);
  }
  std::swap(punts_, kept_punts_);
  kept_punts_.clear();
  return shed;
}

// A packet under a SKIP key whose first packet this worker punted less than kHoldNs ago: the control plane is
// installing its SA, so the packet waits here (release_held) instead of costing it a keying attempt of its own and
// arriving after the packets behind it. A first packet is remembered as pending and punted.
bool IoLoop::Worker::held_for_pending_key(size_t i, uint64_t now) {
  const PuntMeta& m = punts_.meta[i];
  const uint8_t* p = punts_.data(i);
  const size_t ihl = m.length >= 20 ? size_t(p[0] & 0x0f) * 4 : 0;
  SkipView v;
  if (ihl < 20 || p[9] != PROTO_SKIP || m.length <= ihl || skip_parse(p + ihl, m.length - ihl, &v) != R_NONE)
    return false;
  const size_t hash = SkipKeyHash{}(skip_key(v, load32(p + 12)));
  for (const PendingKey& k : pending_keys_) {
    if (k.hash != hash || k.since == 0 || now - k.since >= kHoldNs) continue;
    if (held_.size() >= kHeldPackets) return false;
    if (held_.empty()) held_under_ = last_tables_;
    held_.add(punts_, i);
    held_since_.push_back(now);
    count(S_HELD_FOR_KEY);
    return true;
  }
  pending_keys_[pending_next_++ % kPendingKeys] = PendingKey{hash, now};
  return false;
}

// Once the tables changed since the held packets met them, they go through the engine again in arrival order (a
// key still unknown is punted then); one held longer than kHoldNs is dropped.
void IoLoop::Worker::release_held() {
  if (held_.empty()) return;
  const uint64_t now = steady_ns();
  const bool changed = loop_.core_->table.snapshot() != held_under_;
  if (!changed && now - held_since_.front() < kHoldNs) return;
  // Taken out first: queueing may run the batch (make_room → flush), which must find nothing held.
  PuntBatch released;
  std::vector<uint64_t> since;
  std::swap(released, held_);
  std::swap(since, held_since_);
  held_under_.reset();
  for (size_t j = 0; j < released.size(); j++) {
    const PuntMeta& m = released.meta[j];
    if (!changed || now - since[j] >= kHoldNs) {
      count(S_HELD_EXPIRED);
      continue;
    }
    batch_.make_room(1);
    std::memcpy(batch_.next_slot(), released.data(j), m.length);
    batch_.queue(OP_INBOUND, m.length, m.from);
  }
}

// A role's port (deliver 'route') hands the IPv4 fragments the UDP transport carries to the role whole: INBOUND parses
// no fragment of a sealed packet its sender fragmented, the role reassembles it. Fragments read from the TUN go to
// OUTBOUND like any datagram (policies name no ports, so a fragment meets its datagram's policy; the engine punts
// the ones it cannot take on, docs/engine.md §4.2), and split() makes them fit once sealed.
bool IoLoop::Worker::punted_fragment(const uint8_t* p, size_t len) {
  if (len < 20 || (p[0] >> 4) != 4 || (load16(p + 6) & 0x3fff) == 0) return false;
  if (punts_.size() >= kBatchPackets) offer_punts();
  punts_.add(From::raw, uint8_t(R_FRAGMENT), 0, p, len);
  return true;
}

// A send the kernel refused: too big for the link (answered below) or any other reason (no route, …).
void IoLoop::Worker::refused(int err, const uint8_t* q, size_t qlen, size_t on_wire, uint32_t nexthop, From back) {
  if (err != EMSGSIZE) return count(S_TX_ERRORS);
  count(S_TX_TOO_BIG);
  frag_needed(q, qlen, on_wire, nexthop, back);
}

// A send of batch packet i (on_wire bytes) the kernel refused: too big, its datagram is split and sealed again when
// it had no DF; else as refused() says, the sender answered back the way it came (for one read from the TUN, into it).
void IoLoop::Worker::refused_in_batch(int err, size_t i, size_t on_wire) {
  if (err == EMSGSIZE && split(i, on_wire)) return count(S_TX_TOO_BIG);
  refused(err, batch_.quote(i), batch_.quote_length(i), on_wire, batch_.desc(i)[D_NEXTHOP], From::tun);
}

// The largest datagram that fits the link toward nexthop once `added` bytes of layers are on it; 0 if unknown.
long IoLoop::Worker::fits_toward(uint32_t nexthop, long added) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(nexthop);
  int link_mtu = 0;
  socklen_t optlen = sizeof link_mtu;
  if (::connect(mtu_probe.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0 ||
      ::getsockopt(mtu_probe.get(), IPPROTO_IP, IP_MTU, &link_mtu, &optlen) != 0)
    return 0;
  return long(link_mtu) - added;
}

// Pre-fragmentation (RFC 4459 §5.1): a datagram without DF (whole, or a fragment its sender made for its own link)
// whose sealed packet is too big for the link is split into fragments that fit once sealed, and each is sealed on
// its own (requeue_split), so the receiving gateway opens whole packets on its fast path and the destination host
// reassembles. False when packet i kept no original (DF, not OUTBOUND) or it cannot be split.
bool IoLoop::Worker::split(size_t i, size_t on_wire) {
  const size_t len = batch_.original_length(i);
  if (len == 0) return false;
  const long fits = fits_toward(batch_.desc(i)[D_NEXTHOP], long(on_wire) - long(len));
  if (fits < 68 || fits >= long(len)) return false;  // RFC 791: every link carries 68
  const int n = ipv4_fragment(batch_.original(i), len, size_t(fits),
                              [this](size_t piece) { return split_.append(From::tun, piece); });
  if (n <= 0) return false;
  count(S_TX_SPLIT);
  return true;
}

// A sealed packet too big for the link toward its next hop: if the datagram it carries (quote q: its header and 8
// bytes) said DF, tell its sender the MTU that would have fit (ICMP 3/4, RFC 1191; wire/icmp.h) — the path MTU
// toward the next hop less what the engine added — back the way the datagram came: into the TUN for one read there,
// out of the raw socket (routed by the kernel to the sender) for one the control plane injected from a link. A relay
// quotes the layer as it arrived: the Next-hop layer it swapped in may weigh the same as the one it took out, or less.
void IoLoop::Worker::frag_needed(const uint8_t* q, size_t qlen, size_t sealed_len, uint32_t nexthop, From back) {
  if (!icmp_frag_needed_allowed(q, qlen)) return;
  const long fits = fits_toward(nexthop, long(sealed_len) - long(load16(q + 2)));
  if (fits < 68 || fits >= long(load16(q + 2))) return;  // RFC 791: every link carries 68; it must be smaller
  uint8_t icmp[kIcmpFragNeededMax];
  const size_t total = icmp_frag_needed(icmp, q, qlen, uint16_t(fits));
  // A loop delivering by route reads a link's traffic on its TUN: the answer goes back by the kernel's routes too.
  if (back == From::tun && !loop_.deliver_route_)
    tun->write(icmp, total);
  else if (raw->send_one(icmp, total, load32(q + 12)) != 0)
    return count(S_TX_ERRORS);
  count(S_TX_FRAG_NEEDED);
}

// An injected packet out as it is, to its destination: refused as too big, it is answered like a FORWARD.
void IoLoop::Worker::send_injected(const uint8_t* b, size_t len, const uint8_t* quote, size_t quote_len) {
  if (len < 20) return count(S_TX_ERRORS);
  const uint32_t dst = load32(b + 16);
  const bool by_udp = carried_by_udp(b, len);
  const int err = by_udp ? udp->send_one(b, len) : raw->send_one(b, len, dst);
  if (err) return refused(err, quote, quote_len, len + (by_udp ? kUdpOverhead : 0), dst, From::raw);
  if (!by_udp) count(S_TX_RAW);
}

void IoLoop::Worker::drain_injects() {
  uint64_t ignored;
  if (::read(wake.get(), &ignored, sizeof ignored) < 0 && errno != EAGAIN) count(S_RX_ERRORS);
  {
    std::lock_guard<std::mutex> q(inject_mu);
    std::swap(injecting_, injects);
  }
  for (const InjectMeta& m : injecting_.meta) {
    const uint8_t* p = injecting_.bytes.data() + m.offset;
    switch (Via(m.via)) {
      case Via::outbound:
      case Via::inbound:
        batch_.make_room(1);
        std::memcpy(batch_.next_slot(), p, m.length);
        batch_.queue(Via(m.via) == Via::outbound ? OP_OUTBOUND : OP_INBOUND, m.length,
                     Via(m.via) == Via::outbound ? From::tun : From::raw);
        break;
      case Via::tun:
        tun->write(p, m.length);
        break;
      case Via::raw:
        send_injected(p, m.length, p + m.length, m.quote_length);
        break;
    }
  }
  injecting_.clear_and_trim(injecting_.bytes.size());
  flush();
}

// A wakeup of a sleeping worker by a packet from another CPU costs tens of µs on a VM (an IPI through the
// hypervisor); within poll_us of its last packet the worker polls instead, yielding to any runnable thread.
// That pays off for sparse traffic (a request, then its reply); under load the next batch comes anyway and
// spinning would only take CPU from other threads, so a worker busier than kPollMaxPackets per window sleeps.
void IoLoop::Worker::run() {
  // Linux keeps a nice value per thread. Raising it back to the daemon's base is always allowed; lowering it below
  // the inherited value needs CAP_SYS_NICE, and without it the worker keeps what it inherited.
  if (loop_.worker_nice_ != kNiceInherited && ::setpriority(PRIO_PROCESS, ::gettid(), loop_.worker_nice_) != 0)
    count(S_NICE_REFUSED);
  using Clock = std::chrono::steady_clock;
  const uint32_t poll_us = loop_.poll_us_;
  const auto poll_window = std::chrono::microseconds(poll_us);
  Clock::time_point last_packet = Clock::now() - poll_window, window_start = last_packet;
  uint64_t handled_before_window = 0;
  epoll_event events[3 + kRawSockets];
  const std::atomic<bool>& stopping = loop_.stopping_;
  while (!stopping.load(std::memory_order_relaxed)) {
    const bool polling =
        poll_us && Clock::now() - last_packet < poll_window && handled_ - handled_before_window <= kPollMaxPackets;
    // Held packets are looked at again within a millisecond even when nothing arrives.
    const int wait_ms = polling ? 0 : held_.empty() ? -1 : 1;
    const int n = ::epoll_wait(epoll.get(), events, int(sizeof events / sizeof events[0]), wait_ms);
    if (n == 0) {
      if (held_.empty()) {
        sched_yield();
      } else {
        release_held();
        flush();
      }
      continue;
    }
    if (n < 0) {
      if (errno != EINTR) count(S_RX_ERRORS);
      continue;
    }
    if (poll_us) {
      last_packet = Clock::now();
      if (last_packet - window_start >= poll_window) {
        window_start = last_packet;
        handled_before_window = handled_;
      }
    }
    for (int i = 0; i < n && !stopping.load(std::memory_order_relaxed); i++) {
      const uint32_t tag = events[i].data.u32;
      // Held packets run before what is read after them (the first packet of their key, re-injected, before both):
      // behind a batch of newer packets of their key they could fall left of its SA's replay window.
      if (tag == kTagWake) drain_injects();
      release_held();
      if (tag == kTagTun)
        tun->read(batch_);
      else if (tag == kTagUdp)
        udp->read(batch_);
      else if (tag != kTagWake)
        raw->read(tag - kTagRaw, batch_);
      flush();
    }
  }
  timespec used{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &used) == 0) loop_.retired_cpu_ns_ += nanoseconds(used);
}

}  // namespace mipsec::io
