#include "io/tun.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include "io/gso.h"

namespace mipsec::io {

namespace {

std::string sys_error(const std::string& what) { return what + ": " + std::strerror(errno); }

void set_name(ifreq* ifr, const std::string& name) {
  std::memset(ifr, 0, sizeof *ifr);
  std::strncpy(ifr->ifr_name, name.c_str(), IFNAMSIZ - 1);
}

void set_inet(sockaddr* sa, uint32_t host_order) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(host_order);
  std::memcpy(sa, &sin, sizeof sin);
}

}  // namespace

std::string tun_open(const TunConfig& cfg, size_t queues, std::vector<Fd>* out) {
  if (cfg.name.empty() || cfg.name.size() >= IFNAMSIZ)
    return "tun.name must be 1.." + std::to_string(IFNAMSIZ - 1) + " characters";
  for (size_t q = 0; q < queues; q++) {
    Fd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
    if (!fd.valid()) return sys_error("open /dev/net/tun (is the tun module loaded, and are we root?)");
    ifreq ifr;
    set_name(&ifr, cfg.name);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (queues > 1 ? IFF_MULTI_QUEUE : 0) | (cfg.offload ? IFF_VNET_HDR : 0);
    if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0)
      return sys_error("TUNSETIFF " + cfg.name + " (an existing device of another kind or queue mode has this name?)");
    if (cfg.offload && ::ioctl(fd.get(), TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4)) != 0)
      return sys_error("TUNSETOFFLOAD " + cfg.name + " (turn tun.offload off on this kernel)");
    out->push_back(std::move(fd));
  }
  return {};
}

std::string tun_configure(const TunConfig& cfg) {
  Fd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return sys_error("socket(AF_INET) for device setup");
  ifreq ifr;
  set_name(&ifr, cfg.name);
  ifr.ifr_mtu = int(cfg.mtu);
  if (::ioctl(sock.get(), SIOCSIFMTU, &ifr) != 0) return sys_error("tun.mtu " + std::to_string(cfg.mtu) + " refused");
  for (size_t i = 0; i < cfg.addresses.size(); i++) {
    const std::string label = i == 0 ? cfg.name : cfg.name + ":" + std::to_string(i);
    if (label.size() >= IFNAMSIZ) return "tun.name too long to label address " + std::to_string(i) + " (" + label + ")";
    const TunAddress& a = cfg.addresses[i];
    set_name(&ifr, label);
    set_inet(&ifr.ifr_addr, a.address);
    if (::ioctl(sock.get(), SIOCSIFADDR, &ifr) != 0) return sys_error("tun address " + std::to_string(i) + " refused");
    set_name(&ifr, label);
    set_inet(&ifr.ifr_netmask, a.prefix_len == 0 ? 0 : ~uint32_t(0) << (32 - a.prefix_len));
    if (::ioctl(sock.get(), SIOCSIFNETMASK, &ifr) != 0)
      return sys_error("tun address " + std::to_string(i) + " netmask refused");
  }
  // The engine is IPv4 only: without this the kernel sends IPv6 router solicitations and MLD reports into the
  // TUN as soon as it is up. The sysctl tree is the calling thread's namespace. No IPv6 in the kernel: nothing to do.
  const std::string ipv6 = "/proc/sys/net/ipv6/conf/" + cfg.name + "/disable_ipv6";
  Fd knob(::open(ipv6.c_str(), O_WRONLY | O_CLOEXEC));
  if (knob.valid() && ::write(knob.get(), "1", 1) != 1) return sys_error("disabling IPv6 on " + cfg.name);
  set_name(&ifr, cfg.name);
  if (::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) != 0) return sys_error("SIOCGIFFLAGS " + cfg.name);
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (::ioctl(sock.get(), SIOCSIFFLAGS, &ifr) != 0) return sys_error("bringing " + cfg.name + " up");
  return {};
}

TunPort::TunPort(Fd fd, bool vnet, LoopStats& stats) : fd_(std::move(fd)), vnet_(vnet), stats_(stats) {
  if (vnet_) {
    super_.resize(kVnetHdrBytes + 65536);
    coalesced_.resize(kVnetHdrBytes + TcpCoalescer::kMaxSuper);
  }
}

void TunPort::read(Batch& b) {
  if (vnet_) return read_vnet(b);
  for (size_t reads = 0; reads < kBatchPackets; reads++) {
    b.make_room(1);
    const ssize_t r = ::read(fd_.get(), b.next_slot(), kMaxPacket);
    if (r < 0) {
      if (errno != EAGAIN && errno != EINTR) stats_.add(S_RX_ERRORS);
      return;
    }
    stats_.add(S_RX_TUN);
    b.queue(OP_OUTBOUND, size_t(r), From::tun);
  }
}

// With offloads: finish the checksum or split the super-packet, so the engine sees plain datagrams.
void TunPort::read_vnet(Batch& b) {
  for (size_t reads = 0; reads < kBatchPackets; reads++) {
    const ssize_t r = ::read(fd_.get(), super_.data(), super_.size());
    if (r < 0) {
      if (errno != EAGAIN && errno != EINTR) stats_.add(S_RX_ERRORS);
      return;
    }
    if (size_t(r) < kVnetHdrBytes) {
      stats_.add(S_RX_ERRORS);
      continue;
    }
    stats_.add(S_RX_TUN);
    virtio_net_hdr h;
    std::memcpy(&h, super_.data(), kVnetHdrBytes);
    uint8_t* p = super_.data() + kVnetHdrBytes;
    const size_t len = size_t(r) - kVnetHdrBytes;
    if (h.gso_type == VIRTIO_NET_HDR_GSO_NONE) {
      if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !finish_checksum(h, p, len)) {
        stats_.add(S_RX_ERRORS);
        continue;
      }
      if (len > kMaxPacket) {
        stats_.add(S_RX_TOO_BIG);
        continue;
      }
      b.make_room(1);
      std::memcpy(b.next_slot(), p, len);
      b.queue(OP_OUTBOUND, len, From::tun);
    } else if ((h.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) == VIRTIO_NET_HDR_GSO_TCPV4) {
      stats_.add(S_RX_GSO);
      // A super-packet's segments stay in one batch where they fit (len / gso_size over-counts by at most one):
      // they then leave as one UDP_SEGMENT run, arrive as one GRO read and go into the far TUN as one coalesced
      // write. Split across two batches, every hop after would carry two shorter runs.
      if (h.gso_size) b.make_room((len + h.gso_size - 1) / h.gso_size);
      const int n = segment_tcp4(h, p, len, [&](size_t seg_len) -> uint8_t* {
        if (seg_len > kMaxPacket) return nullptr;
        b.make_room(1);
        uint8_t* at = b.next_slot();
        b.queue(OP_OUTBOUND, seg_len, From::tun);
        return at;
      });
      if (n < 0) stats_.add(S_RX_ERRORS);
    } else {
      stats_.add(S_RX_ERRORS);  // an offload we did not enable
    }
  }
}

void TunPort::write(const uint8_t* p, size_t len) {
  static const virtio_net_hdr plain{};
  iovec parts[2] = {{const_cast<virtio_net_hdr*>(&plain), kVnetHdrBytes}, {const_cast<uint8_t*>(p), len}};
  const ssize_t want = ssize_t(len + (vnet_ ? kVnetHdrBytes : 0));
  stats_.add(::writev(fd_.get(), vnet_ ? parts : parts + 1, vnet_ ? 2 : 1) == want ? S_TX_TUN : S_TX_ERRORS);
}

void TunPort::write_batch(const Batch& b, const size_t* idx, size_t n) {
  if (!vnet_) {
    for (size_t k = 0; k < n; k++) write(b.data(idx[k]), b.length(idx[k]));
    return;
  }
  const uint8_t* p[kBatchPackets];
  size_t len[kBatchPackets];
  for (size_t k = 0; k < n; k++) {
    p[k] = b.data(idx[k]);
    len[k] = b.length(idx[k]);
  }
  coalesce_tcp4(p, len, n, coalesced_.data(), [&](const uint8_t* bytes, size_t length, size_t datagrams) {
    if (datagrams == 1) return write(bytes, length);
    const bool ok = ::write(fd_.get(), bytes, length) == ssize_t(length);
    stats_.add(ok ? S_TX_TUN : S_TX_ERRORS, datagrams);
    if (ok) stats_.add(S_TX_GRO);
  });
}

}  // namespace mipsec::io
