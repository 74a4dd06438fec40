#include "xform/process.h"
#include "xform/layer.h"

namespace mipsec {

static Outcome run(const Tables& t, Packet& pkt, const uint32_t* d) {
  switch (d[D_OP]) {
    case OP_ENCAP:
      return xform_encap(t, pkt, d[D_ARG0]);
    case OP_WRAP:
      return xform_wrap(t, pkt, d[D_ARG0]);
    case OP_INBOUND:
      return xform_inbound(t, pkt);
    case OP_IPIP_ENCAP:
      return xform_ipip_encap(pkt, d[D_ARG0], d[D_ARG1]);
    case OP_IPIP_DECAP:
      return xform_ipip_decap(pkt);
    case OP_OUTBOUND:
      return xform_outbound(t, pkt, d[D_ARG0]);
    default:
      return fail(R_BAD_DESCRIPTOR);
  }
}

void process_batch(const Tables& t, const BatchView& b, uint64_t* counters) {
  for (size_t i = 0; i < b.count; i++) {
    uint32_t* d = b.desc + i * kDescWords;
    const size_t slot_start = i * b.slot_size;
    const size_t slot_end = slot_start + b.slot_size;
    const size_t offset = d[D_OFFSET], length = d[D_LENGTH];
    Outcome o;
    Packet pkt{nullptr, nullptr, nullptr, 0};
    if (slot_end > b.buffer_len || offset < slot_start || offset > slot_end || length > slot_end - offset) {
      o = fail(R_BAD_DESCRIPTOR);
    } else {
      pkt = Packet{b.buffer + slot_start, b.buffer + slot_end, b.buffer + offset, length};
      o = run(t, pkt, d);
      d[D_OFFSET] = uint32_t(pkt.data - b.buffer);
      d[D_LENGTH] = uint32_t(pkt.len);
    }
    d[D_VERDICT] = uint32_t(o.verdict) | uint32_t(o.reason) << 8;
    d[D_SA] = o.sa;
    d[D_NEXTHOP] = o.verdict == V_FORWARD ? o.nexthop : 0;
    if (o.reason != R_NONE) counters[o.reason]++;
    counters[kVerdictCounterBase + o.verdict]++;
  }
}

EngineCore::EngineCore() : counters(std::make_shared<Counters>()) { table.set_successors(&successors); }

void EngineCore::process(const BatchView& b, const Tables& snapshot) {
  uint64_t local[kCounterSlots] = {};
  process_batch(snapshot, b, local);
  for (int i = 0; i < kCounterSlots; i++)
    if (local[i]) counters->value[i].fetch_add(local[i], std::memory_order_relaxed);
}

}  // namespace mipsec
