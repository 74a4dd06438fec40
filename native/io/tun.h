// TUN devices (IFF_TUN | IFF_NO_PI [| IFF_VNET_HDR]): opening one queue per worker, and setting MTU, addresses and link up.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "io/fd.h"

namespace mipsec::io {

struct TunAddress {
  uint32_t address;  // host order
  uint8_t prefix_len;
};

struct TunConfig {
  std::string name;
  uint32_t mtu = 1300;
  // IFF_VNET_HDR with TUN_F_CSUM | TUN_F_TSO4: TCP super-packets in one read (split in io/gso.h).
  bool offload = true;
  std::vector<TunAddress> addresses;
};

// Opens `queues` non-blocking queues of the device (IFF_MULTI_QUEUE when more than one; the kernel keeps
// each flow on one queue). Creates the device if it does not exist. Empty on success, else why.
std::string tun_open(const TunConfig& cfg, size_t queues, std::vector<Fd>* out);

// Sets MTU, the addresses (the first as primary, the rest as NAME:N aliases), turns IPv6 off on the device
// and sets IFF_UP, in the calling thread's namespace.
std::string tun_configure(const TunConfig& cfg);

}  // namespace mipsec::io
