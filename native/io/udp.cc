#include "io/udp.h"
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <cerrno>
#include <cstring>
#include <utility>
#include "io/raw.h"

namespace mipsec::io {

namespace {
std::string sys_error(const std::string& what) { return what + ": " + std::strerror(errno); }
}  // namespace

std::string udp_open(uint16_t port, const std::string& device, Fd* out) {
  Fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP));
  if (!fd.valid()) return sys_error("UDP socket for the transport");
  const int one = 1, bytes = kSocketBufferBytes;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) return sys_error("SO_REUSEPORT on the UDP transport socket");
  for (auto [force, plain] : {std::pair{SO_RCVBUFFORCE, SO_RCVBUF}, std::pair{SO_SNDBUFFORCE, SO_SNDBUF}})
    if (::setsockopt(fd.get(), SOL_SOCKET, force, &bytes, sizeof bytes) != 0) ::setsockopt(fd.get(), SOL_SOCKET, plain, &bytes, sizeof bytes);
  // DF on every datagram: a packet too big for the path fails with EMSGSIZE, as on the raw socket, and its
  // sender is told the MTU that fits instead of the kernel fragmenting the outer datagram.
  const int pmtu = IP_PMTUDISC_DO;
  if (::setsockopt(fd.get(), IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu) != 0) return sys_error("IP_MTU_DISCOVER on the UDP transport socket");
  // The datagram's destination address with each read: a carried packet must be addressed to it (loop.cc).
  if (::setsockopt(fd.get(), IPPROTO_IP, IP_PKTINFO, &one, sizeof one) != 0) return sys_error("IP_PKTINFO on the UDP transport socket");
  // Without GRO (old kernels) every datagram arrives alone: slower, still correct.
  ::setsockopt(fd.get(), IPPROTO_UDP, UDP_GRO, &one, sizeof one);
  if (!device.empty() && ::setsockopt(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, device.c_str(), socklen_t(device.size())) != 0)
    return sys_error("SO_BINDTODEVICE " + device + " on the UDP transport socket");
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_port = htons(port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&at), sizeof at) != 0) return sys_error("bind UDP port " + std::to_string(port) + " for the transport");
  *out = std::move(fd);
  return {};
}

}  // namespace mipsec::io
