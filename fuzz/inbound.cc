// INBOUND on raw hostile packets (docs/engine.md §5). Byte 0 picks the receiver, the rest is the packet:
//   even: gateway G1 — a small mixed SA set (end and next-hop, skip and spi, both MACs and coverages) and
//         relay routes towards G2;  odd: end gateway G2 — in relay SAs and the same end SAs.
// A fresh engine per input, so every finding reproduces from its input alone (windows start empty).
// When G1 relays a packet, G2 must authenticate the layer G1 just added. G1 never forwards anything but
// SKIP/AH/ESP, never delivers under a next-hop SA, never delivers outside an End-End SA's selectors (a miss is
// punted only by an SA with selectorMiss 'punt'), and neither gateway delivers what no SA authenticated. G1 also
// keys kSender's next packet keys itself (successor keys): one of those is held to the rules of its template.
#include <cstddef>
#include <cstdint>
#include "common.h"
#include "wire/ah.h"
#include "wire/ipv4.h"

using namespace mipsec;

namespace {

// Where the datagram G1 sends on starts: behind the layer it wrote when it relayed (every relay SA goes to G2,
// and no forward-as-is route covers G2), else at the start of the packet.
size_t forwarded_datagram_at(const fuzz::Bytes& p, const fuzz::Result& r) {
  if (r.nexthop != fuzz::kEndGw) return 0;
  const SaConfig relay = fuzz::relay_sa(p[9] == PROTO_SKIP ? 0 : 1, Direction::out);
  return kIpv4MinHeader + relay.skip_len + ah_len(relay.ah_alg);
}

bool carries_layer(const fuzz::Bytes& p, size_t at) {
  return p.size() >= at + kIpv4MinHeader &&
         (p[at + 9] == PROTO_SKIP || p[at + 9] == PROTO_AH || p[at + 9] == PROTO_ESP);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool at_end_gateway = data[0] & 1;
  fuzz::Bytes pkt(data + 1, data + size);
  // Tailroom 0: the slot ends where the packet ends, so ASan sees any read past the packet.
  if (at_end_gateway) {
    auto g2 = fuzz::make_end(false);
    const fuzz::Result r2 = fuzz::run_op(*g2, pkt, OP_INBOUND, 0, 0, 256, 0);
    if (r2.verdict == V_DELIVER && r2.sa == 0) fuzz::finding("G2 delivered a datagram no SA authenticated");
    return 0;
  }
  auto g1 = fuzz::make_gateway();
  fuzz::Result r = fuzz::run_op(*g1, pkt, OP_INBOUND, 0, 0, 256, 0);
  // A successor key (docs/engine.md §4.3) is judged as the SA it inherits from.
  for (const KeyedSuccessor& k : g1->successors.take()) {
    if (k.id < fuzz::kSuccessorIds) fuzz::finding("G1 keyed a successor under an id it was not given");
    if (r.sa == k.id) r.sa = k.template_id;
  }
  // Only SKIP/AH/ESP leaves under a next-hop layer; only an End-End layer delivers (bare IP-in-IP is punted).
  if (r.verdict == V_FORWARD && !carries_layer(pkt, forwarded_datagram_at(pkt, r)))
    fuzz::finding("G1 relayed or forwarded a datagram that is not SKIP/AH/ESP");
  if (r.verdict == V_DELIVER && fuzz::is_nexthop_in(r.sa))
    fuzz::finding("G1 delivered what only a next-hop layer protected");
  if (r.verdict == V_DELIVER && !fuzz::gateway_selectors_admit(r.sa, pkt))
    fuzz::finding("G1 delivered a datagram outside its SA's selectors");
  if (r.verdict == V_DELIVER && r.sa == 0) fuzz::finding("G1 delivered a datagram no SA authenticated");
  if (r.verdict == V_PUNT && r.reason == R_SELECTOR &&
      (!fuzz::gateway_selector_miss_punts(r.sa) || fuzz::gateway_selectors_admit(r.sa, pkt)))
    fuzz::finding("G1 punted a selector miss without selectorMiss 'punt', or a datagram inside the selectors");
  const bool relayed = r.verdict == V_FORWARD && pkt.size() >= 20 && load32(pkt.data() + 12) == fuzz::kRelayGw;
  if (relayed) {
    auto g2 = fuzz::make_end(false);
    const fuzz::Result next = fuzz::run_op(*g2, pkt, OP_INBOUND, 0, 0, 256, 0);
    if (next.reason == R_AUTH && next.sa > fuzz::kInOffset && next.sa - fuzz::kInOffset >= fuzz::relay_out_id(0))
      fuzz::finding("G2 rejects the next-hop layer G1 just wrote (relay ICV wrong)");
  }
  return 0;
}
