#include "io/loop.h"
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/udp.h>
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
#include <sys/uio.h>
#include <chrono>
#include <list>
#include "io/gso.h"
#include "io/netns.h"
#include "io/raw.h"
#include "io/udp.h"
#include "wire/bytes.h"

namespace mipsec::io {

const char* const* stat_names() {
  static const char* const names[S_COUNT] = {
      "rxTun", "rxGso", "rxRaw", "rxSkip", "rxAh", "rxEsp", "rxIpip", "rxTooBig", "rxErrors",
      "txRaw", "txTun", "txGro", "txTooBig", "txFragNeeded", "txErrors", "punted", "puntDropped", "injected", "injectDropped",
      "rxUdp", "rxUdpGro", "txUdp", "txUdpGso", "rxUnauthenticated", "rxUdpMisaddressed", "rxForeignInterface", "fastPath",
  };
  return names;
}

namespace {

constexpr size_t kRawSockets = sizeof kRawProtocols;
constexpr uint32_t kTagWake = 0, kTagTun = 1, kTagRaw = 2;  // epoll tags; raw socket i is kTagRaw + i
constexpr uint32_t kTagUdp = kTagRaw + kRawSockets;
// UDP transport receive: datagrams per recvmmsg, each up to a GRO super-datagram of 64 KiB.
constexpr size_t kUdpRecvMessages = 8, kUdpRecvBytes = 65536;
// A worker that handled more packets than this within one poll window is under load: it sleeps when idle.
constexpr uint64_t kPollMaxPackets = 64;
constexpr Stat kRawStat[kRawSockets] = {S_RX_SKIP, S_RX_AH, S_RX_ESP, S_RX_IPIP};
static_assert(sizeof kRawProtocols == 4 && kRawProtocols[0] == 57 && kRawProtocols[3] == 4, "kRawStat follows kRawProtocols");

std::string sys_error(const std::string& what) { return what + ": " + std::strerror(errno); }

uint64_t nanoseconds(const timespec& t) { return uint64_t(t.tv_sec) * 1000000000u + uint64_t(t.tv_nsec); }

// The IP_PKTINFO of a received message, if it carries one.
bool pktinfo_of(msghdr& h, in_pktinfo* out) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(in_pktinfo))) {
      std::memcpy(out, CMSG_DATA(c), sizeof *out);
      return true;
    }
  }
  return false;
}

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

// One worker: its own TUN queue, raw receivers (filtered to its flows), sender, batch memory and thread.
struct IoLoop::Worker {
  unsigned index = 0;
  bool vnet = false;  // the TUN carries a virtio_net_hdr in front of every packet
  Fd tun, tx, epoll, wake;
  Fd rx[kRawSockets];
  Fd mtu_probe;  // a UDP socket in the loop's namespace, to ask the kernel the path MTU toward a next hop
  Fd udp;        // the UDP transport (udp.h), when configured
  unsigned ifindex = 0;  // IoConfig::bind_device's index: what arrives elsewhere is refused; 0 takes every interface
  uint16_t udp_port = 0;
  uint32_t table = 0;  // OUTBOUND's arg0: the policy table of what is read from the TUN
  bool udp_gso = true;  // cleared when the kernel refuses UDP_SEGMENT on this worker's route (no checksum offload)
  std::thread thread;

  std::mutex inject_mu;
  std::vector<Injected> injects;  // bounded by kInjectQueuePackets

  std::vector<uint8_t> buffer = std::vector<uint8_t>(kBatchPackets * kSlotBytes);
  std::vector<uint32_t> desc = std::vector<uint32_t>(kBatchPackets * kDescWords);
  From from[kBatchPackets] = {};
  size_t delivered[kBatchPackets] = {};  // indices of this batch's DELIVER packets, in order
  size_t sent_from[kBatchPackets] = {};   // batch index of each message handed to sendmmsg
  // The inner header + 8 bytes of each OUTBOUND packet, kept to quote in an ICMP "fragmentation needed".
  uint8_t quote[kBatchPackets][kIcmpQuoteMax] = {};
  size_t quote_len[kBatchPackets] = {};
  size_t count = 0;  // packets queued in the batch
  uint64_t handled = 0;  // packets run through the engine so far
  std::vector<PuntPacket> punts;
  mmsghdr msgs[kBatchPackets] = {};
  iovec iov[kBatchPackets] = {};
  sockaddr_in addr[kBatchPackets] = {};
  alignas(cmsghdr) uint8_t rx_ctl[kBatchPackets][CMSG_SPACE(sizeof(in_pktinfo))] = {};  // raw reads: arrival interface

  // UDP transport send: the batch indices it carries, then one message per run of equal-sized packets to one peer.
  size_t udp_from[kBatchPackets] = {};
  size_t group_first[kBatchPackets] = {}, group_size[kBatchPackets] = {};
  mmsghdr udp_msgs[kBatchPackets] = {};
  iovec udp_iov[kBatchPackets] = {};
  sockaddr_in udp_addr[kBatchPackets] = {};
  alignas(cmsghdr) uint8_t udp_ctl[kBatchPackets][CMSG_SPACE(sizeof(uint16_t))] = {};
  // UDP transport receive (its own messages: a flush while splitting reuses msgs/iov for sending).
  std::vector<uint8_t> udp_rx;
  mmsghdr udp_rx_msgs[kUdpRecvMessages] = {};
  iovec udp_rx_iov[kUdpRecvMessages] = {};
  alignas(cmsghdr) uint8_t udp_rx_ctl[kUdpRecvMessages][CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(in_pktinfo))] = {};

  std::vector<uint8_t> super;      // one read from a TUN with offloads: header + up to 64 KiB
  std::vector<uint8_t> coalesced;  // one coalesced write (a flush may run while `super` is being split)

  uint8_t* packet_at(size_t i) { return buffer.data() + i * kSlotBytes + kHeadroom; }
  void queue(uint32_t op, size_t len, From f) {
    uint32_t* d = desc.data() + count * kDescWords;
    std::memset(d, 0, kDescWords * sizeof *d);
    d[D_OP] = op;
    d[D_ARG0] = op == OP_OUTBOUND ? table : 0;
    d[D_OFFSET] = uint32_t(count * kSlotBytes + kHeadroom);
    d[D_LENGTH] = uint32_t(len);
    from[count++] = f;
  }
};

IoLoop::IoLoop(std::shared_ptr<EngineCore> core, std::shared_ptr<PuntSink> sink) : core_(std::move(core)), sink_(std::move(sink)) {}

IoLoop::~IoLoop() { stop(); }

std::string IoLoop::start(const IoConfig& cfg) {
  std::lock_guard<std::mutex> hold(lifecycle_);
  if (!workers_.empty() || stopping_) return "this I/O loop was already started (create a new one)";
  if (cfg.workers < 1 || cfg.workers > kMaxWorkers) return "workers must be 1.." + std::to_string(kMaxWorkers);
  if (cfg.tun.mtu < 576 || cfg.tun.mtu > kMaxPacket) return "tun.mtu must be 576.." + std::to_string(kMaxPacket) + " (the batch slot size)";

  std::list<Claim>::iterator claimed;
  if (std::string e = claim(core_.get(), cfg, &claimed); !e.empty()) return e;
  std::string err = open(cfg);
  if (err.empty()) unclaim_ = [claimed] { unclaim(claimed); };
  else unclaim(claimed);
  return err;
}

std::string IoLoop::open(const IoConfig& cfg) {
  std::vector<std::unique_ptr<Worker>> workers;
  for (unsigned i = 0; i < cfg.workers; i++) {
    workers.push_back(std::make_unique<Worker>());
    workers.back()->index = i;
    workers.back()->vnet = cfg.tun.offload;
    workers.back()->udp_port = cfg.udp_port;
    workers.back()->table = cfg.tun_table;
    if (cfg.udp_port) workers.back()->udp_rx.resize(kUdpRecvMessages * kUdpRecvBytes);
    if (cfg.tun.offload) {
      workers.back()->super.resize(kVnetHdrBytes + 65536);
      workers.back()->coalesced.resize(kVnetHdrBytes + TcpCoalescer::kMaxSuper);
    }
  }
  std::string err = run_in_netns(cfg.netns, [&]() -> std::string {
    const unsigned ifindex = cfg.bind_device.empty() ? 0 : ::if_nametoindex(cfg.bind_device.c_str());
    if (!cfg.bind_device.empty() && ifindex == 0) return sys_error("bind interface " + cfg.bind_device);
    std::vector<Fd> queues;
    if (std::string e = tun_open(cfg.tun, cfg.workers, &queues); !e.empty()) return e;
    if (std::string e = tun_configure(cfg.tun); !e.empty()) return e;
    for (unsigned i = 0; i < cfg.workers; i++) {
      Worker& w = *workers[i];
      w.ifindex = ifindex;
      w.tun = std::move(queues[i]);
      for (size_t s = 0; s < kRawSockets; s++)
        if (std::string e = raw_open_receiver(kRawProtocols[s], i, cfg.workers, &w.rx[s]); !e.empty()) return e;
      if (std::string e = raw_open_sender(&w.tx); !e.empty()) return e;
      if (cfg.udp_port)
        if (std::string e = udp_open(cfg.udp_port, cfg.bind_device, &w.udp); !e.empty()) return e;
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
    bool ok = watch(w.wake.get(), kTagWake) && watch(w.tun.get(), kTagTun);
    for (size_t s = 0; s < kRawSockets; s++) ok = ok && watch(w.rx[s].get(), kTagRaw + uint32_t(s));
    if (w.udp.valid()) ok = ok && watch(w.udp.get(), kTagUdp);
    if (!ok) return sys_error("epoll_ctl");
  }
  workers_ = std::move(workers);
  poll_us_ = cfg.poll_us;
  deliver_route_ = cfg.deliver_route;
  running_ = true;
  for (auto& wp : workers_) {
    Worker* w = wp.get();
    w->thread = std::thread([this, w] { run(*w); });
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
    if (w->thread.joinable() && ::write(w->wake.get(), &one, sizeof one) < 0) count(S_TX_ERRORS);
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
  workers_.clear();  // closes every fd; the TUN device goes away with its last queue
  running_ = false;
  if (unclaim_) unclaim_();
  unclaim_ = nullptr;
}

size_t IoLoop::inject(std::vector<Injected>&& packets) {
  std::lock_guard<std::mutex> hold(lifecycle_);
  if (!running_ || stopping_) return 0;
  const unsigned n = unsigned(workers_.size());
  std::vector<bool> woken(n, false);
  size_t taken = 0;
  for (Injected& p : packets) {
    const unsigned wi = p.bytes.size() >= 20 ? flow_worker(load32(p.bytes.data() + 12), load32(p.bytes.data() + 16), n) : 0;
    Worker& w = *workers_[wi];
    std::lock_guard<std::mutex> q(w.inject_mu);
    if (p.bytes.size() > kMaxPacket || w.injects.size() >= kInjectQueuePackets) {
      count(S_INJECT_DROPPED);
      continue;
    }
    w.injects.push_back(std::move(p));
    woken[wi] = true;
    taken++;
  }
  const uint64_t one = 1;
  for (unsigned i = 0; i < n; i++)
    if (woken[i] && ::write(workers_[i]->wake.get(), &one, sizeof one) < 0) count(S_TX_ERRORS);
  count(S_INJECTED, taken);
  return taken;
}

uint64_t IoLoop::cpu_micros() {
  std::lock_guard<std::mutex> hold(lifecycle_);  // stop() joins under it: a worker is live or retired, never both
  uint64_t ns = retired_cpu_ns_.load();
  for (auto& w : workers_) {
    clockid_t clock;
    timespec t{};
    if (w->thread.joinable() && pthread_getcpuclockid(w->thread.native_handle(), &clock) == 0 && clock_gettime(clock, &t) == 0)
      ns += nanoseconds(t);
  }
  return ns / 1000;
}

void IoLoop::run(Worker& w) {
  // A packet out of the TUN, behind an all-zero virtio_net_hdr (no offload) when the device has one.
  auto write_tun = [&](const uint8_t* p, size_t len) {
    static const virtio_net_hdr plain{};
    iovec parts[2] = {{const_cast<virtio_net_hdr*>(&plain), kVnetHdrBytes}, {const_cast<uint8_t*>(p), len}};
    const ssize_t want = ssize_t(len + (w.vnet ? kVnetHdrBytes : 0));
    count(::writev(w.tun.get(), w.vnet ? parts : parts + 1, w.vnet ? 2 : 1) == want ? S_TX_TUN : S_TX_ERRORS);
  };

  // Writes the batch's DELIVER packets to the TUN; with offloads, runs of one TCP flow go as one super-packet.
  auto deliver = [&](size_t nd) {
    const uint8_t* payloads[kBatchPackets];
    size_t sizes[kBatchPackets];
    auto packet = [&](size_t k, size_t* len) {
      const uint32_t* d = w.desc.data() + w.delivered[k] * kDescWords;
      *len = d[D_LENGTH];
      return w.buffer.data() + d[D_OFFSET];
    };
    for (size_t k = 0; k < nd;) {
      size_t len;
      const uint8_t* p = packet(k, &len);
      TcpCoalescer run;
      size_t extra = 0;
      if (w.vnet && run.start(p, len)) {
        for (size_t q_len; k + 1 + extra < nd;) {
          const uint8_t* q = packet(k + 1 + extra, &q_len);
          if (!run.append(q, q_len)) break;
          payloads[extra] = q + run.headers();
          sizes[extra] = q_len - run.headers();
          extra++;
        }
      }
      if (extra == 0) {
        write_tun(p, len);
      } else {
        const size_t bytes = run.build(w.coalesced.data(), payloads, sizes, extra);
        const bool ok = ::write(w.tun.get(), w.coalesced.data(), bytes) == ssize_t(bytes);
        count(ok ? S_TX_TUN : S_TX_ERRORS, extra + 1);
        if (ok) count(S_TX_GRO);
      }
      k += 1 + extra;
    }
  };

  // Sends a packet out of the raw socket to its next hop; 0 or the errno of the refusal.
  auto send_raw_one = [&](const uint8_t* p, size_t len, uint32_t nexthop) -> int {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(nexthop);
    for (;;) {
      if (::sendto(w.tx.get(), p, len, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) == ssize_t(len)) return 0;
      if (errno != EINTR) return errno;
    }
  };

  // A sealed packet too big for the link toward its next hop: if the datagram it carries (quote q: its header
  // and 8 bytes) said DF, tell its sender the MTU that would have fit (ICMP 3/4, RFC 1191), back the way the
  // datagram came: into the TUN for one read there, out of the raw socket (routed by the kernel to the sender)
  // for one the control plane injected from a link.
  auto frag_needed = [&](const uint8_t* q, size_t qlen, size_t sealed_len, uint32_t nexthop, From back) {
    if (qlen < 20 || (q[0] >> 4) != 4 || !(load16(q + 6) & kIpv4Df)) return;
    const size_t ihl = size_t(q[0] & 0xf) * 4, inner_len = load16(q + 2), quoted = std::min(qlen, ihl + 8);
    if (q[9] == 1 && (qlen <= ihl || q[ihl] == 3 || q[ihl] == 4 || q[ihl] == 5 || q[ihl] == 11 || q[ihl] == 12))
      return;  // never an ICMP error about an ICMP error (RFC 1122 §3.2.2)
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(nexthop);
    int link_mtu = 0;
    socklen_t optlen = sizeof link_mtu;
    if (::connect(w.mtu_probe.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0 ||
        ::getsockopt(w.mtu_probe.get(), IPPROTO_IP, IP_MTU, &link_mtu, &optlen) != 0 || sealed_len <= inner_len)
      return;
    const size_t overhead = sealed_len - inner_len;
    if (size_t(link_mtu) < overhead + 68) return;  // RFC 791: every link carries 68 bytes
    uint8_t icmp[20 + 8 + kIcmpQuoteMax] = {};
    const size_t total = 20 + 8 + quoted;
    ipv4_build(icmp, OuterHeader{0, 0, 0, 64, 1, load32(q + 16), load32(q + 12)}, total);
    icmp[20] = 3;  // destination unreachable
    icmp[21] = 4;  // fragmentation needed and DF set
    store16(icmp + 26, uint16_t(size_t(link_mtu) - overhead));
    std::memcpy(icmp + 28, q, quoted);
    store16(icmp + 22, internet_checksum(icmp + 20, 8 + quoted));
    if (back == From::tun) write_tun(icmp, total);
    else if (send_raw_one(icmp, total, load32(q + 12)) != 0) return count(S_TX_ERRORS);
    count(S_TX_FRAG_NEEDED);
  };

  // A send the kernel refused: too big for the link (answered as above) or any other reason (no route, …).
  auto refused = [&](int err, const uint8_t* q, size_t qlen, size_t on_wire, uint32_t nexthop, From back) {
    if (err != EMSGSIZE) return count(S_TX_ERRORS);
    count(S_TX_TOO_BIG);
    frag_needed(q, qlen, on_wire, nexthop, back);
  };

  // Whether a packet leaving "raw" goes over the UDP transport instead (when configured, for its protocols).
  auto carried_by_udp = [&](const uint8_t* p, size_t len) { return w.udp.valid() && len >= 20 && udp_carries(p[9]); };

  // The UDP transport's destination for a sealed packet: the gateway that owns its outer destination.
  auto udp_peer = [&](const uint8_t* p) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(w.udp_port);
    to.sin_addr.s_addr = htonl(load32(p + 16));
    return to;
  };

  // One packet over the UDP transport without segmentation offload; 0 or the errno of the refusal.
  auto send_udp_one = [&](const uint8_t* p, size_t len) -> int {
    sockaddr_in to = udp_peer(p);
    for (;;) {
      if (::sendto(w.udp.get(), p, len, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) == ssize_t(len)) {
        count(S_TX_UDP);
        return 0;
      }
      if (errno != EINTR) return errno;
    }
  };

  // A FORWARD packet the UDP transport refused (batch index i).
  auto udp_refused = [&](size_t i, int err) {
    const uint32_t* d = w.desc.data() + i * kDescWords;
    refused(err, w.quote[i], w.quote_len[i], d[D_LENGTH] + kUdpOverhead, d[D_NEXTHOP], From::tun);
  };

  // Sends the batch's UDP-carried FORWARD packets (w.udp_from[0..nu), in batch order): each run of packets of one
  // size to one peer (the last may be shorter) is one UDP_SEGMENT message, so one sendmmsg moves the whole batch.
  auto send_udp = [&](size_t nu) {
    auto packet = [&](size_t k) { return w.desc.data() + w.udp_from[k] * kDescWords; };
    size_t groups = 0;
    for (size_t k = 0; k < nu;) {
      const uint32_t* d = packet(k);
      const uint8_t* first = w.buffer.data() + d[D_OFFSET];
      const uint32_t peer = load32(first + 16);
      const size_t seg = d[D_LENGTH];
      size_t n = 1, bytes = seg;
      while (w.udp_gso && k + n < nu && n < kUdpGsoMaxSegments) {
        const uint32_t* e = packet(k + n);
        const size_t len = e[D_LENGTH];
        if (load32(w.buffer.data() + e[D_OFFSET] + 16) != peer || len > seg || bytes + len > kUdpGsoMaxBytes) break;
        bytes += len;
        n++;
        if (len < seg) break;  // only the last segment may be shorter
      }
      for (size_t j = 0; j < n; j++) {
        const uint32_t* e = packet(k + j);
        w.udp_iov[k + j] = iovec{w.buffer.data() + e[D_OFFSET], e[D_LENGTH]};
      }
      w.udp_addr[groups] = udp_peer(first);
      msghdr& h = w.udp_msgs[groups].msg_hdr;
      h = msghdr{&w.udp_addr[groups], sizeof w.udp_addr[groups], &w.udp_iov[k], n, nullptr, 0, 0};
      if (n > 1) {
        h.msg_control = w.udp_ctl[groups];
        h.msg_controllen = sizeof w.udp_ctl[groups];
        cmsghdr* c = CMSG_FIRSTHDR(&h);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        const uint16_t size = uint16_t(seg);
        std::memcpy(CMSG_DATA(c), &size, sizeof size);
      }
      w.group_first[groups] = k;
      w.group_size[groups++] = n;
      k += n;
    }
    for (size_t sent = 0; sent < groups;) {
      const int r = ::sendmmsg(w.udp.get(), w.udp_msgs + sent, unsigned(groups - sent), 0);
      if (r > 0) {
        for (size_t g = sent; g < sent + size_t(r); g++) {
          count(S_TX_UDP, w.group_size[g]);
          if (w.group_size[g] > 1) count(S_TX_UDP_GSO);
        }
        sent += size_t(r);
        continue;
      }
      const int err = errno;
      if (err == EINTR) continue;
      const size_t first = w.group_first[sent], n = w.group_size[sent];
      if (n == 1) {
        udp_refused(w.udp_from[first], err);
      } else {
        // The kernel refused the offload itself: EIO when the route's device cannot checksum for it (stop asking
        // on this worker), EINVAL when a segment exceeds the path MTU. Each packet then goes alone.
        if (err == EIO) w.udp_gso = false;
        for (size_t j = first; j < first + n; j++) {
          const uint32_t* d = packet(j);
          if (const int e = send_udp_one(w.buffer.data() + d[D_OFFSET], d[D_LENGTH])) udp_refused(w.udp_from[j], e);
        }
      }
      sent++;
    }
  };

  // Runs the queued batch through the engine and sends every result where its verdict says.
  auto flush = [&] {
    if (w.count == 0) return;
    const size_t n = w.count;
    w.count = 0;
    w.handled += n;
    for (size_t i = 0; i < n; i++) {
      const uint32_t* d = w.desc.data() + i * kDescWords;
      w.quote_len[i] = d[D_OP] == OP_OUTBOUND ? std::min<size_t>(d[D_LENGTH], kIcmpQuoteMax) : 0;
      std::memcpy(w.quote[i], w.buffer.data() + d[D_OFFSET], w.quote_len[i]);
    }
    // One snapshot for the batch and for the local-address check of DELIVERs sent by route.
    const std::shared_ptr<const Tables> tables = core_->table.snapshot();
    core_->process(BatchView{w.buffer.data(), w.buffer.size(), w.desc.data(), n, kSlotBytes}, *tables);
    size_t m = 0, nd = 0, nu = 0, fast = 0;
    // A message for sendmmsg on the raw socket: packet i of the batch to next hop `to`.
    auto send_to = [&](size_t i, uint8_t* data, size_t len, uint32_t to) {
      w.addr[m] = sockaddr_in{};
      w.addr[m].sin_family = AF_INET;
      w.addr[m].sin_addr.s_addr = htonl(to);
      w.iov[m] = iovec{data, len};
      w.msgs[m].msg_hdr = msghdr{&w.addr[m], sizeof w.addr[m], &w.iov[m], 1, nullptr, 0, 0};
      w.sent_from[m++] = i;
    };
    for (size_t i = 0; i < n; i++) {
      const uint32_t* d = w.desc.data() + i * kDescWords;
      uint8_t* data = w.buffer.data() + d[D_OFFSET];
      const size_t len = d[D_LENGTH];
      switch (Verdict(d[D_VERDICT] & 0xff)) {
        case V_FORWARD:
          fast++;
          if (carried_by_udp(data, len)) w.udp_from[nu++] = i;
          else send_to(i, data, len, d[D_NEXTHOP]);
          break;
        case V_DELIVER:
          if (deliver_route_ && d[D_SA] != 0) {
            // By route: the kernel sends the datagram on toward its destination, never over the UDP transport. One
            // for this node itself is the control plane's (handed to the kernel, its reply would leave in clear).
            if (len < 20) {  // the engine delivers parsed IPv4 only
              count(S_TX_ERRORS);
              break;
            }
            const uint32_t dst = load32(data + 16);
            if (tables->is_local(dst)) {
              w.punts.push_back(PuntPacket{w.from[i], uint8_t(R_DELIVER_LOCAL), d[D_SA], std::vector<uint8_t>(data, data + len)});
              break;
            }
            fast++;
            send_to(i, data, len, dst);
            break;
          }
          fast++;
          w.delivered[nd++] = i;
          break;
        case V_PUNT:
          // INBOUND (as an op or a policy's action) punts the datagram it peeled out of bare IP-in-IP as not_ipsec:
          // no SA authenticated it, so it goes to JS, never into the TUN.
          if ((d[D_VERDICT] >> 8) == R_NOT_IPSEC && d[D_OFFSET] != i * kSlotBytes + kHeadroom)
            count(S_RX_UNAUTHENTICATED);
          w.punts.push_back(PuntPacket{w.from[i], uint8_t(d[D_VERDICT] >> 8), d[D_SA], std::vector<uint8_t>(data, data + len)});
          break;
        default:  // DROP: the engine counted it by reason
          fast++;
          break;
      }
    }
    for (size_t sent = 0; sent < m;) {
      const int r = ::sendmmsg(w.tx.get(), w.msgs + sent, unsigned(m - sent), 0);
      if (r > 0) {
        sent += size_t(r);
        count(S_TX_RAW, uint64_t(r));
      } else if (errno != EINTR) {
        // The kernel refused this packet (too big, no route, …): skip it.
        const size_t i = w.sent_from[sent];
        refused(errno, w.quote[i], w.quote_len[i], w.iov[sent].iov_len, ntohl(w.addr[sent].sin_addr.s_addr), From::tun);
        sent++;
      }
    }
    if (nu) send_udp(nu);
    deliver(nd);
    count(S_FAST_PATH, fast);
    if (!w.punts.empty()) {
      const size_t total = w.punts.size();
      uint8_t reasons[kBatchPackets];
      for (size_t k = 0; k < total; k++) reasons[k] = w.punts[k].reason;
      const size_t taken = sink_->offer(std::move(w.punts));
      w.punts.clear();
      // The sink takes a prefix of the batch.
      for (size_t k = 0; k < taken; k++) punt_reasons_[reasons[k] % kPuntReasonSlots].fetch_add(1, std::memory_order_relaxed);
      count(S_PUNTED, taken);
      count(S_PUNT_DROPPED, total - taken);
    }
  };

  // With offloads: finish the checksum or split the super-packet, so the engine sees plain datagrams.
  auto read_tun_offload = [&] {
    for (size_t reads = 0; reads < kBatchPackets; reads++) {
      const ssize_t r = ::read(w.tun.get(), w.super.data(), w.super.size());
      if (r < 0) {
        if (errno != EAGAIN && errno != EINTR) count(S_RX_ERRORS);
        break;
      }
      if (size_t(r) < kVnetHdrBytes) {
        count(S_RX_ERRORS);
        continue;
      }
      count(S_RX_TUN);
      virtio_net_hdr h;
      std::memcpy(&h, w.super.data(), kVnetHdrBytes);
      uint8_t* p = w.super.data() + kVnetHdrBytes;
      const size_t len = size_t(r) - kVnetHdrBytes;
      if (h.gso_type == VIRTIO_NET_HDR_GSO_NONE) {
        if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !finish_checksum(h, p, len)) {
          count(S_RX_ERRORS);
          continue;
        }
        if (len > kMaxPacket) {
          count(S_RX_TOO_BIG);
          continue;
        }
        if (w.count == kBatchPackets) flush();
        std::memcpy(w.packet_at(w.count), p, len);
        w.queue(OP_OUTBOUND, len, From::tun);
      } else if ((h.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) == VIRTIO_NET_HDR_GSO_TCPV4) {
        count(S_RX_GSO);
        // A super-packet's segments stay in one batch where they fit (len / gso_size over-counts by at most
        // one): they then leave as one UDP_SEGMENT run, arrive as one GRO read and go into the far TUN as one
        // coalesced write. Split across two batches, every hop after would carry two shorter runs.
        if (h.gso_size && w.count + (len + h.gso_size - 1) / h.gso_size > kBatchPackets) flush();
        const int n = segment_tcp4(h, p, len, [&](size_t seg_len) -> uint8_t* {
          if (seg_len > kMaxPacket) return nullptr;
          if (w.count == kBatchPackets) flush();
          uint8_t* at = w.packet_at(w.count);
          w.queue(OP_OUTBOUND, seg_len, From::tun);
          return at;
        });
        if (n < 0) count(S_RX_ERRORS);
      } else {
        count(S_RX_ERRORS);  // an offload we did not enable
      }
    }
    flush();
  };

  auto read_tun = [&] {
    if (w.vnet) return read_tun_offload();
    while (w.count < kBatchPackets) {
      const ssize_t r = ::read(w.tun.get(), w.packet_at(w.count), kMaxPacket);
      if (r < 0) {
        if (errno != EAGAIN && errno != EINTR) count(S_RX_ERRORS);
        break;
      }
      count(S_RX_TUN);
      w.queue(OP_OUTBOUND, size_t(r), From::tun);
    }
    flush();
  };

  // Whether a received message arrived on the interface the loop is bound to (counted when not). Without
  // IP_PKTINFO there is nothing to check against, so a bound loop refuses it.
  auto arrived_here = [&](msghdr& h) {
    in_pktinfo info{};
    if (w.ifindex == 0 || (pktinfo_of(h, &info) && unsigned(info.ipi_ifindex) == w.ifindex)) return true;
    count(S_RX_FOREIGN_INTERFACE);
    return false;
  };

  auto read_raw = [&](size_t s) {
    for (size_t i = 0; i < kBatchPackets; i++) {
      w.iov[i] = iovec{w.packet_at(i), kMaxPacket};
      w.msgs[i].msg_hdr = msghdr{nullptr, 0, &w.iov[i], 1, w.rx_ctl[i], sizeof w.rx_ctl[i], 0};
    }
    const int r = ::recvmmsg(w.rx[s].get(), w.msgs, kBatchPackets, MSG_DONTWAIT, nullptr);
    if (r < 0) {
      if (errno != EAGAIN && errno != EINTR) count(S_RX_ERRORS);
      return;
    }
    count(S_RX_RAW, uint64_t(r));
    count(kRawStat[s], uint64_t(r));
    for (int i = 0; i < r; i++) {
      if (!arrived_here(w.msgs[i].msg_hdr)) continue;
      // A datagram larger than the slot arrives cut: the engine drops it as truncated.
      const bool cut = w.msgs[i].msg_hdr.msg_flags & MSG_TRUNC;
      if (cut) count(S_RX_TOO_BIG);
      // Slots stay in step with the reads: a refused packet leaves its slot behind, so move this one down.
      if (w.count != size_t(i)) std::memmove(w.packet_at(w.count), w.packet_at(i), cut ? 0 : w.msgs[i].msg_len);
      w.queue(OP_INBOUND, cut ? 0 : w.msgs[i].msg_len, From::raw);
    }
    flush();
  };

  // The UDP transport: each datagram (or GRO super-datagram of equal-sized segments, the last maybe shorter)
  // holds whole IPv4 packets, which go to INBOUND as if read from a raw socket. A raw socket only ever sees
  // packets for this host; here the carried header is the sender's word, so a packet whose destination is
  // not the address the datagram came to is dropped before the engine sees it (rxUdpMisaddressed).
  auto read_udp = [&] {
    for (size_t j = 0; j < kUdpRecvMessages; j++) {
      w.udp_rx_iov[j] = iovec{w.udp_rx.data() + j * kUdpRecvBytes, kUdpRecvBytes};
      w.udp_rx_msgs[j].msg_hdr = msghdr{nullptr, 0, &w.udp_rx_iov[j], 1, w.udp_rx_ctl[j], sizeof w.udp_rx_ctl[j], 0};
    }
    const int r = ::recvmmsg(w.udp.get(), w.udp_rx_msgs, kUdpRecvMessages, MSG_DONTWAIT, nullptr);
    if (r < 0) {
      if (errno != EAGAIN && errno != EINTR) count(S_RX_ERRORS);
      return;
    }
    for (int j = 0; j < r; j++) {
      msghdr& h = w.udp_rx_msgs[j].msg_hdr;
      const uint8_t* data = w.udp_rx.data() + size_t(j) * kUdpRecvBytes;
      const size_t total = w.udp_rx_msgs[j].msg_len;
      if (!arrived_here(h)) continue;
      size_t seg = total;
      for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
          int size = 0;
          std::memcpy(&size, CMSG_DATA(c), sizeof size);
          if (size > 0) seg = size_t(size);
        }
      }
      in_pktinfo info{};
      const bool addressed = pktinfo_of(h, &info);  // no IP_PKTINFO: nothing to check against, so nothing goes in
      const uint32_t to = ntohl(info.ipi_addr.s_addr);
      // An empty datagram is one (empty) packet: the engine drops it as truncated.
      const size_t segments = total == 0 ? 1 : (total + seg - 1) / seg;
      // As for TUN super-packets: a GRO run stays in one batch where it fits, so a relay sends it on whole.
      if (w.count + segments > kBatchPackets) flush();
      for (size_t k = 0; k < segments; k++) {
        const size_t at = k * seg, len = std::min(seg, total - at);
        if (!addressed || (len >= 20 && load32(data + at + 16) != to)) {
          count(S_RX_UDP_MISADDRESSED);
          continue;
        }
        if (w.count == kBatchPackets) flush();
        // A datagram larger than a slot goes in as length 0: the engine drops it as truncated.
        if (len > kMaxPacket) count(S_RX_TOO_BIG);
        else std::memcpy(w.packet_at(w.count), data + at, len);
        w.queue(OP_INBOUND, len > kMaxPacket ? 0 : len, From::raw);
      }
      count(S_RX_UDP, segments);
      if (segments > 1) count(S_RX_UDP_GRO);
    }
    flush();
  };

  // An injected packet out as it is, to its destination: refused as too big, it is answered like a FORWARD.
  auto send_injected = [&](const Injected& p) {
    const uint8_t* b = p.bytes.data();
    const size_t len = p.bytes.size();
    if (len < 20) return count(S_TX_ERRORS);
    const uint32_t dst = load32(b + 16);
    const bool udp = carried_by_udp(b, len);
    const int err = udp ? send_udp_one(b, len) : send_raw_one(b, len, dst);
    if (err) return refused(err, p.quote.data(), p.quote.size(), len + (udp ? kUdpOverhead : 0), dst, From::raw);
    if (!udp) count(S_TX_RAW);
  };

  auto drain_injects = [&] {
    uint64_t ignored;
    if (::read(w.wake.get(), &ignored, sizeof ignored) < 0 && errno != EAGAIN) count(S_RX_ERRORS);
    std::vector<Injected> batch;
    {
      std::lock_guard<std::mutex> q(w.inject_mu);
      batch.swap(w.injects);
    }
    for (Injected& p : batch) {
      switch (p.via) {
        case Via::outbound:
        case Via::inbound:
          std::memcpy(w.packet_at(w.count), p.bytes.data(), p.bytes.size());
          w.queue(p.via == Via::outbound ? OP_OUTBOUND : OP_INBOUND, p.bytes.size(), p.via == Via::outbound ? From::tun : From::raw);
          if (w.count == kBatchPackets) flush();
          break;
        case Via::tun:
          write_tun(p.bytes.data(), p.bytes.size());
          break;
        case Via::raw:
          send_injected(p);
          break;
      }
    }
    flush();
  };

  // A wakeup of a sleeping worker by a packet from another CPU costs tens of µs on a VM (an IPI through the
  // hypervisor); within poll_us of its last packet the worker polls instead, yielding to any runnable thread.
  // That pays off for sparse traffic (a request, then its reply); under load the next batch comes anyway and
  // spinning would only take CPU from other threads, so a worker busier than kPollMaxPackets per window sleeps.
  using Clock = std::chrono::steady_clock;
  const auto poll_window = std::chrono::microseconds(poll_us_);
  Clock::time_point last_packet = Clock::now() - poll_window, window_start = last_packet;
  uint64_t handled_before_window = 0;
  epoll_event events[3 + kRawSockets];
  while (!stopping_.load(std::memory_order_relaxed)) {
    const bool polling = poll_us_ && Clock::now() - last_packet < poll_window && w.handled - handled_before_window <= kPollMaxPackets;
    const int n = ::epoll_wait(w.epoll.get(), events, int(sizeof events / sizeof events[0]), polling ? 0 : -1);
    if (n == 0) {
      sched_yield();
      continue;
    }
    if (n < 0) {
      if (errno != EINTR) count(S_RX_ERRORS);
      continue;
    }
    if (poll_us_) {
      last_packet = Clock::now();
      if (last_packet - window_start >= poll_window) {
        window_start = last_packet;
        handled_before_window = w.handled;
      }
    }
    for (int i = 0; i < n && !stopping_.load(std::memory_order_relaxed); i++) {
      const uint32_t tag = events[i].data.u32;
      if (tag == kTagWake) drain_injects();
      else if (tag == kTagTun) read_tun();
      else if (tag == kTagUdp) read_udp();
      else read_raw(tag - kTagRaw);
    }
  }
  timespec used{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &used) == 0) retired_cpu_ns_ += nanoseconds(used);
}

}  // namespace mipsec::io
