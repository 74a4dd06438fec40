// Raw IPv4 sockets: one receiver per IPsec-related protocol (SKIP 57, AH 51, ESP 50, IP-in-IP 4), and one
// IPPROTO_RAW sender (IP_HDRINCL: the engine writes every header byte).
#pragma once
#include <cstdint>
#include <string>
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

}  // namespace mipsec::io
