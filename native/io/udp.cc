#include "io/udp.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <cerrno>
#include <algorithm>
#include <cstring>
#include <utility>
#include "io/raw.h"
#include "wire/bytes.h"

namespace mipsec::io {

namespace {
std::string sys_error(const std::string& what) { return what + ": " + std::strerror(errno); }
}  // namespace

std::string udp_open(uint16_t port, const std::string& device, Fd* out) {
  Fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP));
  if (!fd.valid()) return sys_error("UDP socket for the transport");
  const int one = 1, bytes = kSocketBufferBytes;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    return sys_error("SO_REUSEPORT on the UDP transport socket");
  for (auto [force, plain] : {std::pair{SO_RCVBUFFORCE, SO_RCVBUF}, std::pair{SO_SNDBUFFORCE, SO_SNDBUF}})
    if (::setsockopt(fd.get(), SOL_SOCKET, force, &bytes, sizeof bytes) != 0)
      ::setsockopt(fd.get(), SOL_SOCKET, plain, &bytes, sizeof bytes);
  // DF on every datagram: a packet too big for the path fails with EMSGSIZE, as on the raw socket, and its
  // sender is told the MTU that fits instead of the kernel fragmenting the outer datagram.
  const int pmtu = IP_PMTUDISC_DO;
  if (::setsockopt(fd.get(), IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu) != 0)
    return sys_error("IP_MTU_DISCOVER on the UDP transport socket");
  // The datagram's destination address with each read: a carried packet must be addressed to it (loop.cc).
  if (::setsockopt(fd.get(), IPPROTO_IP, IP_PKTINFO, &one, sizeof one) != 0)
    return sys_error("IP_PKTINFO on the UDP transport socket");
  // Without GRO (old kernels) every datagram arrives alone: slower, still correct.
  ::setsockopt(fd.get(), IPPROTO_UDP, UDP_GRO, &one, sizeof one);
  if (!device.empty() &&
      ::setsockopt(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, device.c_str(), socklen_t(device.size())) != 0)
    return sys_error("SO_BINDTODEVICE " + device + " on the UDP transport socket");
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_port = htons(port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&at), sizeof at) != 0)
    return sys_error("bind UDP port " + std::to_string(port) + " for the transport");
  *out = std::move(fd);
  return {};
}

UdpPort::UdpPort(Fd fd, Fd send_fd, uint16_t port, unsigned ifindex, LoopStats& stats)
    : fd_(std::move(fd)),
      send_fd_(std::move(send_fd)),
      port_(port),
      ifindex_(ifindex),
      stats_(stats),
      rx_(kRecvMessages * kRecvBytes) {}

sockaddr_in UdpPort::peer(const uint8_t* p) const {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port_);
  to.sin_addr.s_addr = htonl(load32(p + 16));
  return to;
}

void UdpPort::read(Batch& b) {
  for (size_t j = 0; j < kRecvMessages; j++) {
    rx_iov_[j] = iovec{rx_.data() + j * kRecvBytes, kRecvBytes};
    rx_msgs_[j].msg_hdr = msghdr{nullptr, 0, &rx_iov_[j], 1, rx_ctl_[j], sizeof rx_ctl_[j], 0};
  }
  const int r = ::recvmmsg(fd_.get(), rx_msgs_, kRecvMessages, MSG_DONTWAIT, nullptr);
  if (r < 0) {
    if (errno != EAGAIN && errno != EINTR) stats_.add(S_RX_ERRORS);
    return;
  }
  for (int j = 0; j < r; j++) {
    msghdr& h = rx_msgs_[j].msg_hdr;
    const uint8_t* data = rx_.data() + size_t(j) * kRecvBytes;
    const size_t total = rx_msgs_[j].msg_len;
    in_pktinfo info{};
    const bool addressed = pktinfo_of(h, &info);  // no IP_PKTINFO: nothing to check against, so nothing goes in
    // The socket is bound to the interface (SO_BINDTODEVICE); IP_PKTINFO says so again.
    if (ifindex_ != 0 && (!addressed || unsigned(info.ipi_ifindex) != ifindex_)) {
      stats_.add(S_RX_FOREIGN_INTERFACE);
      continue;
    }
    size_t seg = total;
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
      if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
        int size = 0;
        std::memcpy(&size, CMSG_DATA(c), sizeof size);
        if (size > 0) seg = size_t(size);
      }
    }
    const uint32_t to = ntohl(info.ipi_addr.s_addr);
    // An empty datagram is one (empty) packet: the engine drops it as truncated.
    const size_t segments = total == 0 ? 1 : (total + seg - 1) / seg;
    b.make_room(segments);
    for (size_t k = 0; k < segments; k++) {
      const size_t at = k * seg, len = std::min(seg, total - at);
      if (!addressed || (len >= 20 && load32(data + at + 16) != to)) {
        stats_.add(S_RX_UDP_MISADDRESSED);
        continue;
      }
      if (b.diverted(data + at, len)) continue;
      b.make_room(1);
      // A datagram larger than a slot goes in as length 0: the engine drops it as truncated.
      if (len > kMaxPacket)
        stats_.add(S_RX_TOO_BIG);
      else
        std::memcpy(b.next_slot(), data + at, len);
      b.queue(OP_INBOUND, len > kMaxPacket ? 0 : len, From::raw);
    }
    stats_.add(S_RX_UDP, segments);
    if (segments > 1) stats_.add(S_RX_UDP_GRO);
  }
}

int UdpPort::send_one(const uint8_t* p, size_t len) {
  sockaddr_in to = peer(p);
  for (;;) {
    if (::sendto(send_fd(), p, len, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) == ssize_t(len)) {
      stats_.add(S_TX_UDP);
      return 0;
    }
    if (errno != EINTR) return errno;
  }
}

size_t UdpPort::send(const Batch& b, Refusal* refused) {
  const size_t nu = pending_;
  pending_ = 0;
  size_t groups = 0, nr = 0;
  for (size_t k = 0; k < nu;) {
    const uint8_t* first = b.data(index_[k]);
    const uint32_t to = load32(first + 16);
    const size_t seg = b.length(index_[k]);
    size_t n = 1, bytes = seg;
    while (gso_ && k + n < nu && n < kUdpGsoMaxSegments) {
      const size_t len = b.length(index_[k + n]);
      if (load32(b.data(index_[k + n]) + 16) != to || len > seg || bytes + len > kUdpGsoMaxBytes) break;
      bytes += len;
      n++;
      if (len < seg) break;  // only the last segment may be shorter
    }
    for (size_t j = 0; j < n; j++)
      iov_[k + j] = iovec{const_cast<uint8_t*>(b.data(index_[k + j])), b.length(index_[k + j])};
    addr_[groups] = peer(first);
    msghdr& h = msgs_[groups].msg_hdr;
    h = msghdr{&addr_[groups], sizeof addr_[groups], &iov_[k], n, nullptr, 0, 0};
    if (n > 1) {
      h.msg_control = ctl_[groups];
      h.msg_controllen = sizeof ctl_[groups];
      cmsghdr* c = CMSG_FIRSTHDR(&h);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      const uint16_t size = uint16_t(seg);
      std::memcpy(CMSG_DATA(c), &size, sizeof size);
    }
    group_first_[groups] = k;
    group_size_[groups++] = n;
    k += n;
  }
  for (size_t sent = 0; sent < groups;) {
    const int r = ::sendmmsg(send_fd(), msgs_ + sent, unsigned(groups - sent), 0);
    if (r > 0) {
      for (size_t g = sent; g < sent + size_t(r); g++) {
        stats_.add(S_TX_UDP, group_size_[g]);
        if (group_size_[g] > 1) stats_.add(S_TX_UDP_GSO);
      }
      sent += size_t(r);
      continue;
    }
    const int err = errno;
    if (err == EINTR) continue;
    const size_t first = group_first_[sent], n = group_size_[sent];
    if (n == 1) {
      refused[nr++] = Refusal{index_[first], err};
    } else {
      // The kernel refused the offload itself: EIO when the route's device cannot checksum for it (stop asking on
      // this worker), EINVAL when a segment exceeds the path MTU. Each packet then goes alone.
      if (err == EIO) gso_ = false;
      for (size_t j = first; j < first + n; j++)
        if (const int e = send_one(b.data(index_[j]), b.length(index_[j]))) refused[nr++] = Refusal{index_[j], e};
    }
    sent++;
  }
  return nr;
}

}  // namespace mipsec::io
