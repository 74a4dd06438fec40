#include "io/raw.h"
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
  if (::setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof bytes) != 0) ::setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
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
  if (::setsockopt(fd.get(), IPPROTO_IP, IP_PKTINFO, &one, sizeof one) != 0) return sys_error("IP_PKTINFO on a raw receiver");
  if (workers > 1) {
    // On a raw IPv4 socket the filter sees the packet from its IP header: flow_worker() in classic BPF.
    sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 12),           // A = source
        BPF_STMT(BPF_MISC | BPF_TAX, 0),                  // X = A
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 16),           // A = destination
        BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),           // A ^= X
        BPF_STMT(BPF_MISC | BPF_TAX, 0),                  // X = A
        BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),          // A >>= 16
        BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),           // A ^= X
        BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, workers),     // A %= workers
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, worker, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    sock_fprog prog{uint16_t(sizeof code / sizeof code[0]), code};
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0) return sys_error("SO_ATTACH_FILTER (flow spreading)");
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

}  // namespace mipsec::io
