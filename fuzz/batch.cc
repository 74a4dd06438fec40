// Descriptor and batch bounds (docs/engine.md §1): hostile offsets, lengths, ops, slot sizes and a buffer
// shorter than count × slotSize. Input: b0 count-1 (& 7), b1 slot size 128..2048 (% 31, × 64), b2 bit 7
// shortens the buffer by b2 & 0x7f bytes; then 5 little-endian words per packet (op, arg0, arg1, offset,
// length); the rest fills the buffer. Every out-of-slot descriptor must be dropped as bad_descriptor, every
// output must stay in its slot, and each packet must be counted once.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include "common.h"

using namespace mipsec;

namespace {

std::unique_ptr<EngineCore> make_engine() {
  auto e = fuzz::make_sender();
  for (size_t i = 0; i < fuzz::end_specs().size(); i++) fuzz::install(*e, fuzz::end_sa(i, Direction::in));
  for (size_t i = 0; i < fuzz::nexthop_specs().size(); i++) fuzz::install(*e, fuzz::nexthop_sa(i, Direction::in));
  e->table.set_local({fuzz::kRelayGw, fuzz::kEndGw});
  e->table.set_routes({{0, 0, 0}});
  // OUTBOUND arg0 picks the table: 0 = ENCAP + one WRAP for everything; 1 = every other action, by source and
  // destination prefix (fallthrough to shorter prefixes when no source matches), and a home agent's RFC 2003 tunnel
  // to one home address with the reverse tunnels (IP-in-IP to kEndGw) it explains; any other table is empty.
  std::vector<PolicyEntry> policies(10);
  policies[0].action = PA_PROTECT, policies[0].sa = fuzz::end_out_id(0), policies[0].wraps = 1,
  policies[0].wrap[0] = fuzz::nexthop_out_id(1);
  const PolicyAction actions[] = {PA_PASS, PA_PUNT, PA_DROP, PA_INBOUND, PA_BYPASS, PA_PASS, PA_PROTECT};
  const uint8_t lengths[] = {0, 8, 16, 24, 32, 8, 16};
  std::vector<SelectorPrefix> src = {{0x0a000000, 8}, {0xc0000000, 2}, {0x80000000, 1}};
  for (int k = 0; k < 7; k++) {
    PolicyEntry& p = policies[k + 1];
    p.table = 1;
    p.length = lengths[k];
    p.network = lengths[k] == 0 ? 0 : 0x0a000000u & (~uint32_t(0) << (32 - lengths[k]));
    if (k == 5) p.network = 0x80000000u;
    if (k == 6) p.network = 0x0a010000u;
    p.action = actions[k];
    p.sa = actions[k] == PA_PROTECT ? fuzz::end_out_id(0) : 0;
    p.src_first = uint32_t(k % 3);
    p.src_count = k % 2 == 0 ? 0 : 1;
  }
  PolicyEntry& tunnel = policies[8];
  tunnel.table = 1, tunnel.network = 0x0a000006u, tunnel.length = 32, tunnel.action = PA_TUNNEL;
  tunnel.tunnel_src = fuzz::kEndGw, tunnel.tunnel_dst = fuzz::kSender;
  PolicyEntry& detunnel = policies[9];
  detunnel.table = 1, detunnel.network = fuzz::kEndGw, detunnel.length = 32, detunnel.action = PA_DETUNNEL;
  detunnel.proto = PROTO_IPIP;
  if (!e->table.set_policies(policies, src).empty()) fuzz::finding("the batch harness's policy tables were refused");
  return e;
}

uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<EngineCore> engine = make_engine();
  if (size < 3) return 0;
  const size_t count = 1 + (data[0] & 7);
  const size_t slot = 64 * (2 + data[1] % 31);
  const size_t shortfall = data[2] & 0x80 ? data[2] & 0x7f : 0;
  if (size < 3 + count * 20) return 0;
  const size_t buffer_len = count * slot - shortfall;
  fuzz::Bytes buffer(buffer_len);
  const uint8_t* fill = data + 3 + count * 20;
  const size_t fill_len = size - 3 - count * 20;
  for (size_t i = 0; fill_len && i < buffer_len; i += fill_len)
    std::memcpy(buffer.data() + i, fill, std::min(fill_len, buffer_len - i));

  std::vector<uint32_t> desc(count * kDescWords);
  for (size_t i = 0; i < count; i++)
    for (size_t w = 0; w < 5; w++) desc[i * kDescWords + w] = le32(data + 3 + i * 20 + w * 4);
  const std::vector<uint32_t> in = desc;

  uint64_t before[kCounterSlots];
  for (int i = 0; i < kCounterSlots; i++) before[i] = engine->counters->value[i].load();
  engine->process(BatchView{buffer.data(), buffer.size(), desc.data(), count, slot});

  uint64_t verdicts = 0;
  for (int v = V_FORWARD; v <= V_DROP; v++)
    verdicts += engine->counters->value[kVerdictCounterBase + v].load() - before[kVerdictCounterBase + v];
  if (verdicts != count) fuzz::finding("verdict counters do not add up to the batch count");

  for (size_t i = 0; i < count; i++) {
    const uint32_t* d = &desc[i * kDescWords];
    const size_t start = i * slot, end = start + slot, off = in[i * kDescWords + D_OFFSET],
                 len = in[i * kDescWords + D_LENGTH];
    const bool outside = end > buffer_len || off < start || off > end || len > end - off;
    const Verdict verdict = Verdict(d[D_VERDICT] & 0xff);
    const Reason reason = Reason(d[D_VERDICT] >> 8);
    if (verdict < V_FORWARD || verdict > V_DROP || reason > kLastReason)
      fuzz::finding("verdict or reason out of range");
    if (outside && !(verdict == V_DROP && reason == R_BAD_DESCRIPTOR))
      fuzz::finding("out-of-slot descriptor not dropped as bad_descriptor");
    if (outside) continue;
    if (d[D_OFFSET] < start || d[D_OFFSET] > end || d[D_LENGTH] > end - d[D_OFFSET])
      fuzz::finding("output packet outside its slot");
  }
  return 0;
}
