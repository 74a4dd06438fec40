// Raw IPv4 sockets: one receiver per IPsec-related protocol (SKIP 57, AH 51, ESP 50, IP-in-IP 4), and one
// IPPROTO_RAW sender (IP_HDRINCL: the engine writes every header byte), and the port a worker reads and sends them
// through.
#pragma once
#include <netinet/in.h>
#include <sys/socket.h>
#include <cstdint>
#include <string>
#include "io/batch.h"
#include "io/fd.h"

namespace mipsec::io {

constexpr uint8_t kRawProtocols[] = {57, 51, 50, 4};
constexpr int kSocketBufferBytes = 4 << 20;

// A non-blocking receiver for `proto`, with IP_PKTINFO (its arrival interface with each packet).
// With workers > 1, a socket filter keeps only the packets whose outer
// (source, destination) hash to `worker`, so each flow is read by one worker only and never reordered.
std::string raw_open_receiver(uint8_t proto, unsigned worker, unsigned workers, Fd* out);
std::string raw_open_sender(Fd* out);

// The worker a packet with these outer addresses belongs to: the same function the socket filter computes.
unsigned flow_worker(uint32_t src, uint32_t dst, unsigned workers);

constexpr size_t kRawSockets = sizeof kRawProtocols;

// The IP_PKTINFO of a received message, if it carries one.
bool pktinfo_of(msghdr& h, in_pktinfo* out);

// A worker's raw sockets: its receivers (filtered to its flows) and its sender.
class RawPort {
 public:
  // ifindex: the interface the loop is bound to (0: any); what arrived on another is counted and never queued.
  RawPort(Fd (&rx)[kRawSockets], Fd tx, unsigned ifindex, LoopStats& stats);
  int rx_fd(size_t s) const { return rx_[s].get(); }

  // Whether a received message arrived on the bound interface (counted rxForeignInterface when not). Without
  // IP_PKTINFO there is nothing to check against, so a bound port refuses it.
  bool arrived_here(msghdr& h);
  // One recvmmsg on receiver s; each packet queued for INBOUND (one larger than a slot as length 0: truncated).
  void read(size_t s, Batch& b);

  // Packet i of the batch (data, len) to next hop `to`, for the next send().
  void add(size_t i, const uint8_t* data, size_t len, uint32_t to);
  // Sends what was added in one sendmmsg (as many calls as the kernel needs); each packet the kernel refused is
  // written to refused[] (kBatchPackets entries). Counts txRaw. Returns the number refused.
  size_t send(Refusal* refused);
  // One packet to its next hop; 0 or the errno of the refusal.
  int send_one(const uint8_t* p, size_t len, uint32_t nexthop);

 private:
  Fd rx_[kRawSockets];
  Fd tx_;
  unsigned ifindex_;
  LoopStats& stats_;
  size_t pending_ = 0;
  size_t index_[kBatchPackets] = {};
  mmsghdr msgs_[kBatchPackets] = {};
  iovec iov_[kBatchPackets] = {};
  sockaddr_in addr_[kBatchPackets] = {};
  alignas(cmsghdr) uint8_t ctl_[kBatchPackets][CMSG_SPACE(sizeof(in_pktinfo))] = {};  // reads: the arrival interface
};

}  // namespace mipsec::io
