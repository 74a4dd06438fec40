// Outbound transforms on fuzzed inner datagrams, then INBOUND back, with a round-trip oracle (delivered, relayed
// and delivered, or — next-hop layers alone around a plain datagram — punted nexthop_plain with it; bare
// IP-in-IP — punted not_ipsec with it, SA 0).
// Input: 6 control bytes, then the inner datagram.
//   c0 bit0 repair the inner IPv4 header (so the ops get past the parser), bit1 keep fragment bits,
//      bit2 IP-in-IP around everything, bit3 receive through relay G1 then G2 (else one gateway peels all),
//      bit4 one OUTBOUND through a policy for the inner destination instead of ENCAP + WRAPs (no ENCAP:
//      a bypass policy, so no WRAPs either; with bit5 a pass policy: TTL − 1 and a valid checksum, or
//      ttl_exceeded and the datagram unchanged)
//      bit6 (with bit0) the same ENCAP / first WRAP / protect policy on a sender whose SAs all sealed their
//      maxPackets (1): PUNT rekey naming that SA, the datagram exactly as given, nothing else happens
//   c1 end SA for ENCAP (>= 18: no ENCAP), c2 % 4 next-hop WRAPs, c3..c5 their next-hop SAs (% 8).
// Engines persist across inputs (sequence numbers only grow, so windows never reject a fresh packet).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include "common.h"
#include "wire/ipv4.h"
#include "xform/packet.h"

using namespace mipsec;

namespace {

struct Cast {
  std::unique_ptr<EngineCore> sender = fuzz::make_sender();
  std::unique_ptr<EngineCore> spent = fuzz::make_spent_sender();
  std::unique_ptr<EngineCore> peeler = fuzz::make_peeler();
  std::unique_ptr<EngineCore> relay = fuzz::make_relay();
  std::unique_ptr<EngineCore> end = fuzz::make_end();
};

bool plain(const fuzz::Bytes& inner) {
  Ipv4View v;
  if (ipv4_parse(inner.data(), inner.size(), &v) != R_NONE) return false;  // also rejects fragments
  return v.proto != PROTO_IPIP && v.proto != PROTO_ESP && v.proto != PROTO_AH && v.proto != PROTO_SKIP && v.ttl > 0 &&
         v.total_len == inner.size();
}

bool ok(const fuzz::Result& r) { return r.verdict == V_FORWARD || r.verdict == V_DELIVER; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Cast cast;
  if (size < 6) return 0;
  const uint8_t c0 = data[0], end_index = data[1];
  fuzz::Bytes inner(data + 6, data + size);
  const bool repaired = (c0 & 1) && inner.size() >= kIpv4MinHeader;
  if (repaired) fuzz::repair_ipv4(inner, !(c0 & 2));
  const bool encap = end_index < fuzz::end_specs().size();
  const bool ipip = c0 & 4, via_relay = c0 & 8, outbound = c0 & 16, pass = outbound && !encap && (c0 & 32);
  const int wraps = outbound && !encap ? 0 : data[2] % 4;
  uint32_t wrap_ids[3];
  for (int k = 0; k < wraps; k++) wrap_ids[k] = fuzz::nexthop_out_id(data[3 + k] % fuzz::nexthop_specs().size());

  if ((c0 & 64) && repaired && (encap || wraps > 0)) {
    // Packet limit (docs/engine.md §4): checked right after the IPv4 parse, before anything is sealed.
    fuzz::Bytes pkt = inner;
    const uint32_t first = encap ? fuzz::end_out_id(end_index) : wrap_ids[0];
    fuzz::Result r;
    if (outbound) {
      PolicyEntry policy;
      policy.network = load32(inner.data() + 16);
      policy.length = 32;
      policy.action = PA_PROTECT;
      policy.sa = encap ? first : fuzz::end_out_id(0);
      policy.wraps = uint8_t(wraps);
      for (int k = 0; k < wraps; k++) policy.wrap[k] = wrap_ids[k];
      if (!cast.spent->table.set_policies({policy}, {}).empty()) fuzz::finding("a valid policy table was refused");
      r = fuzz::run_op(*cast.spent, pkt, OP_OUTBOUND);
      if (r.sa != policy.sa) fuzz::finding("rekey: OUTBOUND did not name the spent End-End SA");
    } else {
      r = fuzz::run_op(*cast.spent, pkt, encap ? OP_ENCAP : OP_WRAP, first);
      if (r.sa != first) fuzz::finding("rekey: did not name the spent SA");
    }
    if (r.verdict != V_PUNT || r.reason != R_REKEY || pkt != inner)
      fuzz::finding("rekey: a spent SA's packet was not punted unchanged");
    return 0;
  }
  fuzz::Bytes pkt = inner;
  bool built = true;
  if (outbound) {
    if (inner.size() < kIpv4MinHeader) return 0;
    PolicyEntry policy;
    policy.network = load32(inner.data() + 16);
    policy.length = 32;
    policy.action = encap ? PA_PROTECT : pass ? PA_PASS : PA_BYPASS;
    policy.sa = encap ? fuzz::end_out_id(end_index) : 0;
    policy.wraps = uint8_t(wraps);
    for (int k = 0; k < wraps; k++) policy.wrap[k] = wrap_ids[k];
    if (!cast.sender->table.set_policies({policy}, {}).empty()) fuzz::finding("a valid policy table was refused");
    const fuzz::Result o = fuzz::run_op(*cast.sender, pkt, OP_OUTBOUND);
    built = o.verdict == V_FORWARD;
    if (pass && repaired) {
      // A router's forward: TTL − 1, checksum still valid, every other byte as it was (trailing bytes cut).
      const uint8_t ttl = inner[8];
      if (ttl <= 1 && (o.verdict != V_PUNT || o.reason != R_TTL_EXCEEDED || pkt != inner))
        fuzz::finding("pass: TTL <= 1 not punted ttl_exceeded unchanged");
      if (ttl > 1) {
        if (!built || pkt.size() != std::min<size_t>(inner.size(), kMaxIpTotal) || pkt[8] != ttl - 1)
          fuzz::finding("pass: not forwarded with TTL - 1");
        if (internet_checksum(pkt.data(), size_t(pkt[0] & 15) * 4) != 0)
          fuzz::finding("pass: header checksum invalid after TTL - 1");
        for (size_t k = 0; k < pkt.size(); k++)
          if (k != 8 && k != 10 && k != 11 && pkt[k] != inner[k])
            fuzz::finding("pass: changed a byte other than TTL and checksum");
      }
      return 0;
    }
  } else {
    if (encap) built = fuzz::run_op(*cast.sender, pkt, OP_ENCAP, fuzz::end_out_id(end_index)).verdict == V_FORWARD;
    for (int k = 0; k < wraps && built; k++)
      built = fuzz::run_op(*cast.sender, pkt, OP_WRAP, wrap_ids[k]).verdict == V_FORWARD;
  }
  if (outbound && !encap && built && repaired && pkt != inner) fuzz::finding("a bypass policy changed the datagram");
  const bool loop = ipip && !encap && wraps == 0 && inner.size() >= 20 && load32(inner.data() + 12) == fuzz::kRelayGw;
  if (ipip && built)
    built = fuzz::run_op(*cast.sender, pkt, OP_IPIP_ENCAP, fuzz::kSender, fuzz::kRelayGw).verdict == V_FORWARD;
  // Only a headers-coverage walk looks into the inner datagram, and it may reject one that claims SKIP/AH/ESP.
  const bool walkable = repaired && inner[9] != PROTO_SKIP && inner[9] != PROTO_AH && inner[9] != PROTO_ESP;
  if (walkable && !loop && !built) fuzz::finding("an outbound op dropped a well-formed inner datagram");
  if (!built) return 0;

  const bool layered = encap || wraps > 0 || ipip;
  fuzz::Result r;
  if (!via_relay) {
    r = fuzz::run_op(*cast.peeler, pkt, OP_INBOUND);
  } else {
    if (wraps == 0) return 0;  // G1 holds next-hop SAs only
    r = fuzz::run_op(*cast.relay, pkt, OP_INBOUND);
    const bool relayed = r.verdict == V_FORWARD && pkt.size() >= 20 && load32(pkt.data() + 12) == fuzz::kRelayGw;
    if (relayed) r = fuzz::run_op(*cast.end, pkt, OP_INBOUND);
  }
  if (!repaired || !plain(inner) || !layered) return 0;
  // Next-hop layers alone around a plain datagram: verified, then punted to the policy with the datagram.
  const bool hop_only = wraps > 0 && !encap;
  const bool ipip_only = ipip && wraps == 0 && !encap;  // no SA authenticated it: the control plane judges it
  const bool as_expected = hop_only    ? r.verdict == V_PUNT && r.reason == R_NEXTHOP_PLAIN
                           : ipip_only ? r.verdict == V_PUNT && r.reason == R_NOT_IPSEC && r.sa == 0
                                       : ok(r);
  if (!as_expected) {
    std::fprintf(stderr, "verdict %d reason %d sa %u\n", r.verdict, r.reason, r.sa);
    fuzz::finding("a packet this engine built does not come back through INBOUND");
  }
  if (pkt != inner) fuzz::finding("the datagram INBOUND returns differs from the one sent");
  return 0;
}
