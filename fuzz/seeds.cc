// Writes the seed corpus: valid packets of every kind, built by the engine itself from the fuzz cast.
// Usage: seeds <corpus dir>  (creates <dir>/<harness>/seed-N for every harness)
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include "common.h"
#include "wire/ah.h"
#include "wire/esp.h"
#include "wire/icmp40.h"
#include "wire/ipv4.h"

using namespace mipsec;
using fuzz::Bytes;

namespace {

std::string root;

void write_seed(const char* harness, const Bytes& b) {
  static int n = 0;
  const std::string dir = root + "/" + harness;
  mkdir(dir.c_str(), 0755);
  const std::string path = dir + "/seed-" + std::to_string(n++);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(b.data(), 1, b.size(), f) != b.size() || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::exit(1);
  }
}

Bytes with_prefix(uint8_t first, const Bytes& b) {
  Bytes out{first};
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

Bytes slice(const Bytes& b, size_t from, size_t len) {
  return Bytes(b.begin() + from, b.begin() + std::min(b.size(), from + len));
}

// The SKIP header length of an outer packet with IHL 5 (0 when not SKIP).
size_t skip_len_of(const Bytes& p) { return p[9] == PROTO_SKIP ? (12 + 40 + (p[21] ? 4 : 0) + (p[22] ? 4 : 0)) : 0; }

void put_le32(Bytes& b, uint32_t v) {
  for (int i = 0; i < 4; i++) b.push_back(uint8_t(v >> (8 * i)));
}

// An ICMP 40 message (code 4) quoting a 20-byte IPv4 header and 8 bytes behind it, pointer 0 or 20.
Bytes icmp40_seed(uint16_t pointer) {
  Bytes m = {40, 4, 0, 0, 0, 0, uint8_t(pointer >> 8), uint8_t(pointer)};
  const Bytes quoted = {0x45, 0,   0,   48, 0, 1, 0x40, 0, 64, PROTO_ESP, 0, 0, 10, 1,
                        0,    100, 198, 18, 0, 1, 0,    0, 1,  0,         0, 0, 0,  1};
  m.insert(m.end(), quoted.begin(), quoted.end());
  const uint16_t sum = internet_checksum(m.data(), m.size());
  m[2] = uint8_t(sum >> 8);
  m[3] = uint8_t(sum);
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: seeds <corpus dir>\n");
    return 2;
  }
  root = argv[1];
  mkdir(root.c_str(), 0755);
  auto sender = fuzz::make_sender();
  auto relay = fuzz::make_relay();
  const size_t sizes[] = {20, 64, 333};
  const uint32_t inner_dst = 0x0a000014;  // 10.0.0.20

  // Parsers.
  for (size_t size : sizes) write_seed("ipv4", fuzz::datagram(size, fuzz::kSender, inner_dst, uint8_t(size)));
  Bytes with_options = fuzz::datagram(40, fuzz::kSender, inner_dst, 1);
  with_options[0] = 0x46;
  const uint8_t options[] = {130, 4, 0, 0};  // an immutable option, then the payload
  std::memcpy(with_options.data() + 20, options, sizeof options);
  fuzz::repair_ipv4(with_options, true);
  write_seed("ipv4", with_options);
  for (size_t i = 0; i < fuzz::end_specs().size(); i++) {
    const SaConfig c = fuzz::end_sa(i, Direction::out);
    if (c.skip_len) write_seed("skip", Bytes(c.skip_header, c.skip_header + c.skip_len));
  }
  write_seed("esp", Bytes{1, 2, 3, 3, 4});  // a decrypted trailer: payload 1, padding 1 2 3, pad length 3, next 4

  for (size_t size : sizes) {
    const Bytes inner = fuzz::datagram(size, fuzz::kSender, inner_dst, uint8_t(size));
    // ENCAP with every end SA, then through the next-hop SAs.
    for (size_t e = 0; e < fuzz::end_specs().size(); e++) {
      Bytes p = inner;
      fuzz::run_op(*sender, p, OP_ENCAP, fuzz::end_out_id(e));
      write_seed("inbound", with_prefix(0, p));
      // The same SA's next packet key: G1 keys it itself when the SA is one of its templates.
      auto successor_sender = std::make_unique<EngineCore>();
      fuzz::install(*successor_sender, fuzz::successor_of(fuzz::end_sa(e, Direction::out), uint8_t(e)));
      Bytes next = inner;
      fuzz::run_op(*successor_sender, next, OP_ENCAP, fuzz::end_out_id(e));
      write_seed("inbound", with_prefix(0, next));
      const size_t at = 20 + skip_len_of(p);
      if (p[9] == PROTO_AH || (p[9] == PROTO_SKIP && p[20 + 3] == PROTO_AH))
        write_seed("ah", slice(p, at, 36));
      else
        write_seed("esp", slice(p, at, p.size() - at));
      const Bytes ctrl{1, uint8_t(e), uint8_t(e % 4), uint8_t(e), uint8_t(e + 3), uint8_t(e + 5)};
      Bytes x = ctrl;
      x.insert(x.end(), inner.begin(), inner.end());
      write_seed("xform", x);
      x[0] = 1 | 8 | (e % 2 ? 4 : 0);
      x[2] = 1 + e % 3;
      write_seed("xform", x);
      x[0] = 1 | 16 | (e % 2 ? 8 : 0);  // the same through OUTBOUND and a policy
      write_seed("xform", x);
    }
    for (size_t n = 0; n < fuzz::nexthop_specs().size(); n++) {
      Bytes wrapped = inner;
      fuzz::run_op(*sender, wrapped, OP_WRAP, fuzz::nexthop_out_id(n));
      write_seed("inbound", with_prefix(0, wrapped));
      write_seed("ah", slice(wrapped, 20 + skip_len_of(wrapped), 36));
      // A next-hop layer around an End-End packet, relayed by G1 towards G2.
      Bytes layered = inner;
      fuzz::run_op(*sender, layered, OP_ENCAP, fuzz::end_out_id(n * 2 % fuzz::end_specs().size()));
      fuzz::run_op(*sender, layered, OP_WRAP, fuzz::nexthop_out_id(n));
      write_seed("inbound", with_prefix(0, layered));
      Bytes relayed = layered;
      if (fuzz::run_op(*relay, relayed, OP_INBOUND).verdict == V_FORWARD)
        write_seed("inbound", with_prefix(1, relayed));
      Bytes stacked = layered;
      fuzz::run_op(*sender, stacked, OP_WRAP, fuzz::nexthop_out_id((n + 1) % fuzz::nexthop_specs().size()));
      fuzz::run_op(*sender, stacked, OP_IPIP_ENCAP, fuzz::kSender, fuzz::kRelayGw);
      write_seed("inbound", with_prefix(0, stacked));
    }
    Bytes tunnelled = inner;
    fuzz::run_op(*sender, tunnelled, OP_IPIP_ENCAP, fuzz::kSender, fuzz::kRelayGw);
    write_seed("inbound", with_prefix(0, tunnelled));
    write_seed("ipv4", tunnelled);
  }

  // Batches: an ENCAP, a WRAP and an OUTBOUND in valid slots, and an IPIP_ENCAP whose packet runs past its slot.
  const Bytes inner = fuzz::datagram(64, fuzz::kSender, inner_dst, 9);
  for (uint8_t slot_sel : {0, 30}) {
    const size_t slot = 64 * (2 + slot_sel);
    Bytes b{3, slot_sel, 0};
    const uint32_t ops[4][3] = {{OP_ENCAP, fuzz::end_out_id(0), 0},
                                {OP_WRAP, fuzz::nexthop_out_id(1), 0},
                                {OP_OUTBOUND, 0, 0},
                                {OP_IPIP_ENCAP, fuzz::kSender, fuzz::kEndGw}};
    for (size_t i = 0; i < 4; i++) {
      for (uint32_t w : ops[i]) put_le32(b, w);
      put_le32(b, uint32_t(i * slot + (i == 3 ? slot - 8 : 40)));
      put_le32(b, uint32_t(inner.size()));
    }
    Bytes fill(slot, 0);  // one slot's worth, repeated into every slot: the datagram at +40
    std::copy(inner.begin(), inner.end(), fill.begin() + 40);
    b.insert(b.end(), fill.begin(), fill.end());
    write_seed("batch", b);
  }
  write_seed("icmp40", icmp40_seed(0));
  write_seed("icmp40", icmp40_seed(20));
  return 0;
}
