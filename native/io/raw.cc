#include "io/raw.h"
#include <arpa/inet.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cerrno>
#include <cstring>

namespace mipsec::io {

namespace {

std::string sys_error(const std::string& what) { return what + ": " + std::strerror(errno); }

// Root may exceed net.core.[rw]mem_max with the FORCE variants; otherwise the plain option, capped by the kernel.
void grow_buffer(int fd, int force_opt, int opt) {
  const int bytes = kSocketBufferBytes;
  if (::setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof bytes) != 0)
    ::setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
}

}  // namespace

unsigned flow_worker(uint32_t src, uint32_t dst, unsigned workers) {
  uint32_t h = src ^ dst;
  h ^= h >> 16;
  return workers <= 1 ? 0 : h % workers;
}

std::string raw_open_receiver(uint8_t proto, unsigned worker, unsigned workers, Fd* out) {
  Fd fd(::socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto));
  if (!fd.valid()) return sys_error("raw socket for IP protocol " + std::to_string(proto) + " (needs CAP_NET_RAW)");
  grow_buffer(fd.get(), SO_RCVBUFFORCE, SO_RCVBUF);
  // The arrival interface with each packet: a loop bound to one interface refuses the others' (loop.cc).
  const int one = 1;
  if (::setsockopt(fd.get(), IPPROTO_IP, IP_PKTINFO, &one, sizeof one) != 0)
    return sys_error("IP_PKTINFO on a raw receiver");
  if (workers > 1) {
    // On a raw IPv4 socket the filter sees the packet from its IP header: flow_worker() in classic BPF.
    sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 12),  // A = source
        BPF_STMT(BPF_MISC | BPF_TAX, 0),  // X = A
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 16),  // A = destination
        BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),  // A ^= X
        BPF_STMT(BPF_MISC | BPF_TAX, 0),  // X = A
        BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),  // A >>= 16
        BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),  // A ^= X
        BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, workers),  // A %= workers
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, worker, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    sock_fprog prog{uint16_t(sizeof code / sizeof code[0]), code};
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0)
      return sys_error("SO_ATTACH_FILTER (flow spreading)");
  }
  *out = std::move(fd);
  return {};
}

std::string raw_open_sender(Fd* out) {
  // Blocking: a full send buffer holds the worker back instead of dropping what the engine already sealed.
  Fd fd(::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
  if (!fd.valid()) return sys_error("raw IPPROTO_RAW socket (needs CAP_NET_RAW)");
  grow_buffer(fd.get(), SO_SNDBUFFORCE, SO_SNDBUF);
  *out = std::move(fd);
  return {};
}

namespace {
constexpr Stat kRawStat[kRawSockets] = {S_RX_SKIP, S_RX_AH, S_RX_ESP, S_RX_IPIP};
static_assert(kRawSockets == 4 && kRawProtocols[0] == 57 && kRawProtocols[3] == 4, "kRawStat follows kRawProtocols");
}  // namespace

bool pktinfo_of(msghdr& h, in_pktinfo* out) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(in_pktinfo))) {
      std::memcpy(out, CMSG_DATA(c), sizeof *out);
      return true;
    }
  }
  return false;
}

RawPort::RawPort(Fd (&rx)[kRawSockets], Fd tx, unsigned ifindex, LoopStats& stats)
    : tx_(std::move(tx)), ifindex_(ifindex), stats_(stats) {
  for (size_t s = 0; s < kRawSockets; s++) rx_[s] = std::move(rx[s]);
}

bool RawPort::arrived_here(msghdr& h) {
  in_pktinfo info{};
  if (ifindex_ == 0 || (pktinfo_of(h, &info) && unsigned(info.ipi_ifindex) == ifindex_)) return true;
  stats_.add(S_RX_FOREIGN_INTERFACE);
  return false;
}

void RawPort::read(size_t s, Batch& b) {
  // Reads into the batch's free slots: make room for a whole read first.
  b.make_room(kBatchPackets);
  const size_t first = b.count();
  for (size_t i = 0; i < kBatchPackets; i++) {
    iov_[i] = iovec{b.slot(first + i), kMaxPacket};
    msgs_[i].msg_hdr = msghdr{nullptr, 0, &iov_[i], 1, ctl_[i], sizeof ctl_[i], 0};
  }
  const int r = ::recvmmsg(rx_[s].get(), msgs_, unsigned(kBatchPackets - first), MSG_DONTWAIT, nullptr);
  if (r < 0) {
    if (errno != EAGAIN && errno != EINTR) stats_.add(S_RX_ERRORS);
    return;
  }
  stats_.add(S_RX_RAW, uint64_t(r));
  stats_.add(kRawStat[s], uint64_t(r));
  for (int i = 0; i < r; i++) {
    if (!arrived_here(msgs_[i].msg_hdr)) continue;
    // A datagram larger than the slot arrives cut: the engine drops it as truncated.
    const bool cut = msgs_[i].msg_hdr.msg_flags & MSG_TRUNC;
    if (cut) stats_.add(S_RX_TOO_BIG);
    // Slots stay in step with the reads: a refused packet leaves its slot behind, so move this one down.
    if (b.next_slot() != b.slot(first + size_t(i)))
      std::memmove(b.next_slot(), b.slot(first + size_t(i)), cut ? 0 : msgs_[i].msg_len);
    b.queue(OP_INBOUND, cut ? 0 : msgs_[i].msg_len, From::raw);
  }
}

void RawPort::add(size_t i, const uint8_t* data, size_t len, uint32_t to) {
  addr_[pending_] = sockaddr_in{};
  addr_[pending_].sin_family = AF_INET;
  addr_[pending_].sin_addr.s_addr = htonl(to);
  iov_[pending_] = iovec{const_cast<uint8_t*>(data), len};
  msgs_[pending_].msg_hdr = msghdr{&addr_[pending_], sizeof addr_[pending_], &iov_[pending_], 1, nullptr, 0, 0};
  index_[pending_++] = i;
}

size_t RawPort::send(Refusal* refused) {
  size_t nr = 0;
  for (size_t sent = 0; sent < pending_;) {
    const int r = ::sendmmsg(tx_.get(), msgs_ + sent, unsigned(pending_ - sent), 0);
    if (r > 0) {
      sent += size_t(r);
      stats_.add(S_TX_RAW, uint64_t(r));
    } else if (errno != EINTR) {
      // The kernel refused this packet (too big, no route, …): report it, go on with the next.
      refused[nr++] = Refusal{index_[sent], errno};
      sent++;
    }
  }
  pending_ = 0;
  return nr;
}

int RawPort::send_one(const uint8_t* p, size_t len, uint32_t nexthop) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(nexthop);
  for (;;) {
    if (::sendto(tx_.get(), p, len, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) == ssize_t(len)) return 0;
    if (errno != EINTR) return errno;
  }
}

}  // namespace mipsec::io
