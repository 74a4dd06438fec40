#include "io/tun.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>

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
  if (cfg.name.empty() || cfg.name.size() >= IFNAMSIZ) return "tun.name must be 1.." + std::to_string(IFNAMSIZ - 1) + " characters";
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
    if (::ioctl(sock.get(), SIOCSIFNETMASK, &ifr) != 0) return sys_error("tun address " + std::to_string(i) + " netmask refused");
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

}  // namespace mipsec::io
