// TUN devices (IFF_TUN | IFF_NO_PI [| IFF_VNET_HDR]): opening one queue per worker, setting MTU, addresses and link
// up, and the port a worker reads and writes its queue through.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include "io/batch.h"
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

// A worker's TUN queue. With `vnet` (offload) every packet carries a virtio_net_hdr: a read may be a TCP
// super-packet, split into MSS datagrams, or leave a checksum to finish (io/gso.h); delivered runs of one TCP flow
// are written back as one super-packet.
class TunPort {
 public:
  TunPort(Fd fd, bool vnet, LoopStats& stats);
  int fd() const { return fd_.get(); }

  // Reads until the queue is empty (at most kBatchPackets reads) and queues each datagram for OUTBOUND; a
  // super-packet's segments go into one batch where they fit. Counts rxTun, rxGso, rxTooBig,
  // rxErrors.
  void read(Batch& b);
  // One packet into the kernel as it is (behind an all-zero virtio_net_hdr on a vnet TUN). Counts txTun / txErrors.
  void write(const uint8_t* p, size_t len);
  // Packets idx[0..n) of the batch, in order; with vnet, runs of one TCP flow as one super-packet (txGro).
  void write_batch(const Batch& b, const size_t* idx, size_t n);

 private:
  void read_vnet(Batch& b);
  Fd fd_;
  bool vnet_;
  LoopStats& stats_;
  std::vector<uint8_t> super_;  // one vnet read: header + up to 64 KiB
  std::vector<uint8_t> coalesced_;  // one coalesced write (a flush may run while super_ is being split)
};

}  // namespace mipsec::io
