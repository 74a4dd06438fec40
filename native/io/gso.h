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
    if (n > 0) tcp[13] &= uint8_t(~0x80);  // CWR: the first segment only
    store16(tcp + 16, 0);
    const size_t l4 = tcp_len + seg;
    const uint32_t pseudo = (ip.src >> 16) + (ip.src & 0xffff) + (ip.dst >> 16) + (ip.dst & 0xffff) + 6 + uint32_t(l4);
    store16(tcp + 16, uint16_t(~ones_complement_sum(tcp, l4, pseudo)));
    if (payload == 0) return 1;
  }
  return n;
}

// Coalescing delivered TCP segments into one super-packet for one TUN write (the reverse of segment_tcp4,
// as a NIC's GRO does). Only a plain run qualifies: IPv4 without options or fragments, same addresses, TOS,
// TTL, DF, ports, ack, window and TCP options; flags ACK only (PSH allowed on the last); contiguous sequence
// numbers; every payload but the last exactly the first's size (the MSS the kernel re-segments by).
class TcpCoalescer {
 public:
  static constexpr size_t kMaxSuper = 65535;

  // Starts a run with datagram p; false when p cannot lead one (then write it alone).
  bool start(const uint8_t* p, size_t len) {
    if (!plain_tcp(p, len) || (p[33] & ~0x10) != 0) return false;  // the first segment: ACK only
    first_ = p;
    headers_ = 20 + size_t(p[32] >> 4) * 4;
    mss_ = len - headers_;
    if (mss_ == 0) return false;
    next_seq_ = load32(p + 24) + uint32_t(mss_);
    total_ = len;
    last_payload_ = mss_;
    last_flags_ = p[33];
    return true;
  }

  // Whether datagram q continues the run (it is then counted into it).
  bool append(const uint8_t* q, size_t len) {
    if (last_payload_ != mss_ || (last_flags_ & 0x08) || !plain_tcp(q, len)) return false;
    const uint8_t* f = first_;
    if (size_t(q[32] >> 4) * 4 + 20 != headers_ || len <= headers_ || len - headers_ > mss_ ||
        total_ + len - headers_ > kMaxSuper)
      return false;
    if (q[1] != f[1] || q[6] != f[6] || q[8] != f[8] || std::memcmp(q + 12, f + 12, 8) != 0)
      return false;  // TOS, DF, TTL, addresses
    if (std::memcmp(q + 20, f + 20, 4) != 0 || std::memcmp(q + 28, f + 28, 4) != 0) return false;  // ports, ack
    if ((q[33] & ~0x08) != 0x10 || std::memcmp(q + 34, f + 34, 2) != 0) return false;  // ACK [PSH], window
    if (std::memcmp(q + 40, f + 40, headers_ - 40) != 0 || load32(q + 24) != next_seq_)
      return false;  // options, sequence
    last_payload_ = len - headers_;
    last_flags_ = q[33];
    next_seq_ += uint32_t(last_payload_);
    total_ += last_payload_;
    return true;
  }

  // Writes the run as virtio_net_hdr + one IPv4/TCP packet into out (kVnetHdrBytes + kMaxSuper bytes);
  // later[i] / later_len[i] (i < n) are the run's later datagrams, as appended. Returns the bytes to write.
  size_t build(uint8_t* out, const uint8_t* const* later, const size_t* later_len, size_t n) const {
    virtio_net_hdr h{};
    h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
    h.hdr_len = uint16_t(headers_);
    h.gso_size = uint16_t(mss_);
    h.csum_start = 20;
    h.csum_offset = 16;
    std::memcpy(out, &h, kVnetHdrBytes);
    uint8_t* p = out + kVnetHdrBytes;
    std::memcpy(p, first_, headers_ + mss_);
    size_t at = headers_ + mss_;
    for (size_t i = 0; i < n; i++) {
      std::memcpy(p + at, later[i] + headers_, later_len[i] - headers_);
      at += later_len[i] - headers_;
    }
    store16(p + 2, uint16_t(at));
    store16(p + 10, 0);
    store16(p + 10, internet_checksum(p, 20));
    p[33] = uint8_t(p[33] | (last_flags_ & 0x08));  // PSH of the last segment
    // NEEDS_CSUM: the field holds the pseudo-header sum; the kernel sums the rest.
    const uint32_t src = load32(p + 12), dst = load32(p + 16), l4 = uint32_t(at - 20);
    const uint32_t pseudo = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 6 + l4;
    store16(p + 36, 0);
    store16(p + 36, ones_complement_sum(p + 36, 0, pseudo));
    return kVnetHdrBytes + at;
  }

  size_t headers() const { return headers_; }

 private:
  static bool plain_tcp(const uint8_t* p, size_t len) {
    if (len < 40 || p[0] != 0x45 || p[9] != 6 || (load16(p + 6) & (kIpv4Mf | kIpv4OffsetMask)) || load16(p + 2) != len)
      return false;
    const size_t tcp_len = size_t(p[32] >> 4) * 4;
    return tcp_len >= 20 && 20 + tcp_len <= len;
  }

  const uint8_t* first_ = nullptr;
  size_t headers_ = 0, mss_ = 0, total_ = 0, last_payload_ = 0;
  uint32_t next_seq_ = 0;
  uint8_t last_flags_ = 0;
};

// The TUN writes for datagrams (p[i], len[i]), i < n, in order (the DELIVER path of a TUN with offloads): each run
// of one TCP flow that TcpCoalescer accepts becomes one virtio super-packet built in `scratch` (kVnetHdrBytes +
// TcpCoalescer::kMaxSuper bytes); any other datagram goes alone. write(bytes, length, datagrams) is called once per
// write: datagrams == 1 → the datagram as it is (without a virtio header); > 1 → virtio header + super-packet.
template <class Write>
void coalesce_tcp4(const uint8_t* const* p, const size_t* len, size_t n, uint8_t* scratch, Write write) {
  for (size_t k = 0; k < n;) {
    TcpCoalescer run;
    size_t extra = 0;
    if (run.start(p[k], len[k]))
      while (k + 1 + extra < n && run.append(p[k + 1 + extra], len[k + 1 + extra])) extra++;
    if (extra == 0)
      write(p[k], len[k], size_t(1));
    else
      write(static_cast<const uint8_t*>(scratch), run.build(scratch, p + k + 1, len + k + 1, extra), extra + 1);
    k += 1 + extra;
  }
}

}  // namespace mipsec::io
