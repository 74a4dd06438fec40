// The UDP transport (docs/engine.md §9.1): the draft's packets — SKIP, AH, ESP and IP-in-IP, outer IPv4 header
// included — carried whole as the payload of UDP datagrams between two gateways on one agreed port. The kernel
// then moves them in segmentation-offload batches (UDP_SEGMENT on send, UDP_GRO on receive): one socket call and
// one skb for up to 64 packets, where a raw socket costs a route lookup, an skb and a wakeup per packet.
#pragma once
#include <netinet/in.h>
#include <sys/socket.h>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>
#include "io/batch.h"
#include "io/fd.h"

namespace mipsec::io {

// IPv4 (20) + UDP (8) in front of the carried packet.
constexpr size_t kUdpOverhead = 28;
// Most segments in one UDP_SEGMENT send (the kernel's UDP_MAX_SEGMENTS is 64 on older kernels).
constexpr size_t kUdpGsoMaxSegments = 64;
// Most payload bytes in one UDP_SEGMENT send: an IPv4 datagram's 65535 less the IPv4 and UDP headers.
constexpr size_t kUdpGsoMaxBytes = 65535 - kUdpOverhead;

// Whether the UDP transport carries a packet of this IP protocol (the others leave by the raw socket as they are).
inline bool udp_carries(uint8_t proto) { return proto == 57 || proto == 51 || proto == 50 || proto == 4; }

// A socket bound to 0.0.0.0:port with GRO and IP_PKTINFO on and large buffers, non-blocking for receive (callers pass
// MSG_DONTWAIT), blocking for send so a full buffer holds the worker back. Several workers bind the same port
// with SO_REUSEPORT: the kernel keeps each peer's datagrams on one socket, so no flow is reordered.
// With `device`, the socket takes only what arrives on that interface and sends only out of it (SO_BINDTODEVICE):
// several loops, one per interface, can then share the port.
std::string udp_open(uint16_t port, const std::string& device, Fd* out);

// A worker's UDP transport socket: GRO reads split into packets (each checked against the datagram's destination),
// and sends grouped into UDP_SEGMENT runs.
class UdpPort {
 public:
  // send_fd: where sends go from when fd is bound to an interface (invalid: fd itself).
  UdpPort(Fd fd, Fd send_fd, uint16_t port, unsigned ifindex, LoopStats& stats);
  int fd() const { return fd_.get(); }

  // One recvmmsg: each datagram (or GRO super-datagram of equal-sized segments, the last maybe shorter) holds whole
  // IPv4 packets, queued for INBOUND as if read from a raw socket. A packet whose own destination is not the address
  // the datagram came to (IP_PKTINFO) is counted rxUdpMisaddressed and never queued; one larger than a slot is
  // queued as length 0 (truncated). A GRO run stays in one batch where it fits, so a relay sends it on whole.
  void read(Batch& b);

  // Packet i of the batch for the next send(): it goes to the gateway that owns its outer destination, on the port.
  void add(size_t i) { index_[pending_++] = i; }
  // Sends what was added, in batch order: each run of packets of one size to one peer (the last may be shorter) is
  // one UDP_SEGMENT message, so one sendmmsg moves the whole batch. Each packet the kernel refused is written to
  // refused[] (kBatchPackets entries). Counts txUdp, txUdpGso. Returns the number refused.
  size_t send(const Batch& b, Refusal* refused);
  // One packet without segmentation offload; 0 or the errno of the refusal. Counts txUdp.
  int send_one(const uint8_t* p, size_t len);

 private:
  sockaddr_in peer(const uint8_t* p) const;
  int send_fd() const { return send_fd_.valid() ? send_fd_.get() : fd_.get(); }
  Fd fd_, send_fd_;
  uint16_t port_;
  unsigned ifindex_;
  LoopStats& stats_;
  bool gso_ = true;  // cleared when the kernel refuses UDP_SEGMENT on this worker's route (no checksum offload)
  // Send: the batch indices added, then one message per run of equal-sized packets to one peer.
  size_t pending_ = 0;
  size_t index_[kBatchPackets] = {};
  size_t group_first_[kBatchPackets] = {}, group_size_[kBatchPackets] = {};
  mmsghdr msgs_[kBatchPackets] = {};
  iovec iov_[kBatchPackets] = {};
  sockaddr_in addr_[kBatchPackets] = {};
  alignas(cmsghdr) uint8_t ctl_[kBatchPackets][CMSG_SPACE(sizeof(uint16_t))] = {};
  // Receive (its own messages: a flush while splitting sends through the ones above).
  static constexpr size_t kRecvMessages = 8, kRecvBytes = 65536;  // each up to a GRO super-datagram of 64 KiB
  std::vector<uint8_t> rx_;
  mmsghdr rx_msgs_[kRecvMessages] = {};
  iovec rx_iov_[kRecvMessages] = {};
  alignas(cmsghdr) uint8_t rx_ctl_[kRecvMessages][CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(in_pktinfo))] = {};
};

}  // namespace mipsec::io
