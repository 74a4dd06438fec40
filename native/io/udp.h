// The UDP transport (docs/engine.md §9.1): the draft's packets — SKIP, AH, ESP and IP-in-IP, outer IPv4 header
// included — carried whole as the payload of UDP datagrams between two gateways on one agreed port. The kernel
// then moves them in segmentation-offload batches (UDP_SEGMENT on send, UDP_GRO on receive): one socket call and
// one skb for up to 64 packets, where a raw socket costs a route lookup, an skb and a wakeup per packet.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
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

}  // namespace mipsec::io
