// ICMP "destination unreachable, fragmentation needed and DF set" (type 3 code 4, RFC 792 + RFC 1191): what a gateway
// answers a datagram's sender with when the sealed packet carrying it is too big for the link, naming the largest
// datagram that would fit (docs/engine.md §9). Builds into the caller's memory; no allocation.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mipsec {

// An IPv4 header with options and 8 bytes of its payload: what an ICMP error quotes.
constexpr size_t kIcmpQuoteMax = 60 + 8;
// IPv4 (20) + ICMP (8) + the quote.
constexpr size_t kIcmpFragNeededMax = 20 + 8 + kIcmpQuoteMax;

// Whether the datagram whose start is `quote` (qlen bytes, at least its header) may be answered with ICMP 3/4: IPv4
// with DF, and not itself an ICMP error (RFC 1122 §3.2.2: never an error about an error; also no answer to a
// datagram too short to tell).
bool icmp_frag_needed_allowed(const uint8_t* quote, size_t qlen);

// Writes ICMP 3/4 into out (kIcmpFragNeededMax bytes): IPv4 from the datagram's destination to its source, TTL 64,
// next-hop MTU `mtu`, quoting the datagram's header and 8 bytes of its payload (as much of them as qlen holds).
// Returns its length, or 0 when icmp_frag_needed_allowed() says no.
size_t icmp_frag_needed(uint8_t* out, const uint8_t* quote, size_t qlen, uint16_t mtu);

}  // namespace mipsec
