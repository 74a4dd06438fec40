// Packets read from a TUN with IFF_VNET_HDR and TUN_F_CSUM | TUN_F_TSO4 (DESIGN §5): the kernel may hand
// over a TCP super-packet of up to 64 KiB and leave checksums to us. Both are resolved here, before the
// transforms: each datagram the engine sees is a complete, checksummed IPv4 packet of at most one MSS.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include "wire/ipv4.h"

namespace mipsec::io {

// struct virtio_net_hdr of <linux/virtio_net.h> (that header does not compile as C++: a field is named
// `class`). Fields in the host's byte order, which is what a TUN uses unless told otherwise (TUNSETVNETBE).
struct virtio_net_hdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};
constexpr uint8_t VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
constexpr uint8_t VIRTIO_NET_HDR_GSO_NONE = 0;
constexpr uint8_t VIRTIO_NET_HDR_GSO_TCPV4 = 1;
constexpr uint8_t VIRTIO_NET_HDR_GSO_ECN = 0x80;
constexpr size_t kVnetHdrBytes = sizeof(virtio_net_hdr);
static_assert(kVnetHdrBytes == 10, "virtio_net_hdr is 10 bytes on the wire");

// Completes a checksum the kernel left partial (VIRTIO_NET_HDR_F_NEEDS_CSUM): the field at
// csum_start + csum_offset holds the pseudo-header sum; the rest is summed from csum_start. False when the
// offsets lie outside the packet.
inline bool finish_checksum(const virtio_net_hdr& h, uint8_t* p, size_t len) {
  const size_t start = h.csum_start, field = size_t(h.csum_start) + h.csum_offset;
  if (start >= len || field + 2 > len) return false;
  uint16_t sum = uint16_t(~ones_complement_sum(p + start, len - start));
  if (sum == 0 && len > 9 && p[9] == 17) sum = 0xffff;  // UDP sends a computed 0 as all ones (RFC 768)
  store16(p + field, sum);
  return true;
}

// Splits a TCP/IPv4 super-packet into segments of gso_size payload bytes. For each, out(length) returns
// where to write it (or null to stop); the segment gets its own IPv4 total length, identification (+i),
// header checksum, TCP sequence number, flags (FIN/PSH on the last only, CWR on the first only) and TCP
// checksum. Returns the number of segments written, or -1 when the headers do not parse.
template <class Out>
int segment_tcp4(const virtio_net_hdr& h, const uint8_t* p, size_t len, Out out) {
  Ipv4View ip;
  if (ipv4_parse(p, len, &ip, FragmentCheck::allow) != R_NONE || ip.proto != 6 || h.gso_size == 0) return -1;
  const size_t tcp_at = ip.header_len;
  if (ip.total_len < tcp_at + 20) return -1;
  const size_t tcp_len = size_t(p[tcp_at + 12] >> 4) * 4;
  const size_t headers = tcp_at + tcp_len;
  if (tcp_len < 20 || headers > ip.total_len) return -1;
  const size_t payload = ip.total_len - headers;
  const uint32_t seq = load32(p + tcp_at + 4);
  int n = 0;
  for (size_t off = 0; off < payload || (payload == 0 && n == 0); off += h.gso_size, n++) {
    const size_t seg = payload - off < h.gso_size ? payload - off : h.gso_size;
    uint8_t* s = out(headers + seg);
    if (!s) return n;
    std::memcpy(s, p, headers);
    std::memcpy(s + headers, p + headers + off, seg);
    store16(s + 2, uint16_t(headers + seg));
    store16(s + 4, uint16_t(ip.id + n));
    store16(s + 10, 0);
    store16(s + 10, internet_checksum(s, ip.header_len));
    uint8_t* tcp = s + tcp_at;
    store32(tcp + 4, seq + uint32_t(off));
    if (off + seg < payload) tcp[13] &= uint8_t(~0x09);  // FIN, PSH: the last segment only
    if (n > 0) tcp[13] &= uint8_t(~0x80);                 // CWR: the first segment only
    store16(tcp + 16, 0);
    const size_t l4 = tcp_len + seg;
    const uint32_t pseudo = (ip.src >> 16) + (ip.src & 0xffff) + (ip.dst >> 16) + (ip.dst & 0xffff) + 6 + uint32_t(l4);
    store16(tcp + 16, uint16_t(~ones_complement_sum(tcp, l4, pseudo)));
    if (payload == 0) return 1;
  }
  return n;
}

}  // namespace mipsec::io
