// Building an outbound layer's headers: the outer IPv4 header and the next-hop layer (docs/engine.md §6).
#pragma once
#include "sa/sa.h"
#include "wire/ipv4.h"
#include "xform/packet.h"

namespace mipsec {

// SKIP header bytes an out SA emits (0 in mode spi).
inline size_t skip_bytes(const Sa& sa) { return sa.cfg.mode == Mode::skip ? sa.cfg.skip_len : 0; }

// The outer header of a layer protecting datagram `inner`: TOS and DF copied, ID = first header's seq.
OuterHeader outer_for(const Sa& sa, const Ipv4View& inner, uint32_t first_seq, uint8_t proto_spi_mode);

struct Tables;
struct PolicyEntry;
// SA `id` if it is an out SA with `role`, else nullptr (the caller answers R_NO_SA).
Sa* find_out_sa(const Tables& t, uint32_t id, Role role);

// Prepends IPv4 / [SKIP] / AH(next 4) for out nexthop SA `sa` to the datagram at pkt (header parsed as d).
Outcome prepend_nexthop_layer(Sa& sa, Packet& pkt, const Ipv4View& d);

// Encap (ENCAP), wrap (WRAP), inbound (INBOUND), IP-in-IP, outbound (OUTBOUND): one entry point per op.
Outcome xform_encap(const Tables& t, Packet& pkt, uint32_t sa_id);
Outcome xform_wrap(const Tables& t, Packet& pkt, uint32_t sa_id);
Outcome xform_inbound(const Tables& t, Packet& pkt);
Outcome xform_ipip_encap(Packet& pkt, uint32_t outer_src, uint32_t outer_dst);
// RFC 2003 §3.2: a datagram whose source is the tunnel exit is never tunnelled (IPIP_ENCAP, OUTBOUND tunnel).
inline bool ipip_loop(const Ipv4View& inner, uint32_t outer_dst) { return inner.src == outer_dst; }
Outcome xform_ipip_decap(Packet& pkt);
// IPIP_DECAP's steps after the outer header (parsed as outer, whole): protocol 4, the inner header (fragments allowed),
// TTL > 0; then pkt is the inner datagram (parsed as inner). Unchanged on a failure.
Reason ipip_open(Packet& pkt, const Ipv4View& outer, Ipv4View* inner);
Outcome xform_outbound(const Tables& t, Packet& pkt, uint32_t table);
// A router's TTL − 1 on the datagram at pkt (the caller checked TTL > 1), RFC 1624 (OUTBOUND pass and tunnel, a
// Next-hop SA's `plain` pass).
void decrement_ttl(Packet& pkt, const Ipv4View& ip);

// OUTBOUND `tunnel` on the datagram at pkt (header parsed as ip): loop, TTL, TTL − 1, then IPIP_ENCAP.
Outcome policy_tunnel(Packet& pkt, const Ipv4View& ip, const PolicyEntry& policy);
// OUTBOUND `detunnel` on IP-in-IP at pkt (outer header parsed as outer) classified by policy table `table`.
Outcome policy_detunnel(const Tables& t, Packet& pkt, const Ipv4View& outer, uint32_t table);

// OUTBOUND `protect` in two steps (docs/engine.md §4.2): the first SA of the policy's chain that has sealed its
// maxPackets (0: none), and the sealing itself (ENCAP, then each WRAP) with the verdict OUTBOUND reports.
uint32_t policy_spent_sa(const Tables& t, const PolicyEntry& policy);
Outcome policy_protect(const Tables& t, Packet& pkt, const PolicyEntry& policy);

}  // namespace mipsec
