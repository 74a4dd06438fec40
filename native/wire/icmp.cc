#include "wire/icmp.h"
#include <algorithm>
#include <cstring>
#include "wire/bytes.h"
#include "wire/ipv4.h"

namespace mipsec {

bool icmp_frag_needed_allowed(const uint8_t* q, size_t qlen) {
  if (qlen < 20 || (q[0] >> 4) != 4 || !(load16(q + 6) & kIpv4Df)) return false;
  const size_t ihl = size_t(q[0] & 0xf) * 4;
  if (ihl < 20) return false;
  if (q[9] != 1) return true;
  if (qlen <= ihl) return false;  // ICMP whose type we cannot see: it may be an error
  const uint8_t type = q[ihl];
  return !(type == 3 || type == 4 || type == 5 || type == 11 || type == 12);
}

size_t icmp_frag_needed(uint8_t* out, const uint8_t* q, size_t qlen, uint16_t mtu) {
  if (!icmp_frag_needed_allowed(q, qlen)) return 0;
  const size_t ihl = size_t(q[0] & 0xf) * 4, quoted = std::min(std::min(qlen, ihl + 8), kIcmpQuoteMax);
  const size_t total = 20 + 8 + quoted;
  std::memset(out, 0, total);
  ipv4_build(out, OuterHeader{0, 0, 0, 64, 1, load32(q + 16), load32(q + 12)}, total);
  out[20] = 3;  // destination unreachable
  out[21] = 4;  // fragmentation needed and DF set
  store16(out + 26, mtu);
  std::memcpy(out + 28, q, quoted);
  store16(out + 22, internet_checksum(out + 20, 8 + quoted));
  return total;
}

}  // namespace mipsec
