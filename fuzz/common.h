// Shared by the libFuzzer harnesses and the seed generator: a fixed cast of SAs (every suite, MAC, coverage
// and mode), engines set up as the gateways of docs/engine.md §5, and one-packet runs in an exact-size slot.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>
#include "xform/process.h"

namespace fuzz {

using Bytes = std::vector<uint8_t>;

// Addresses: the sender A, the relaying gateway G1 and the end gateway G2 (host order).
constexpr uint32_t kSender = 0xc6120101;  // 198.18.1.1
constexpr uint32_t kRelayGw = 0xc6120201;  // 198.18.2.1
constexpr uint32_t kEndGw = 0xc6120301;  // 198.18.3.1
// Inner datagrams to 10.99/16 are relayed through the HMAC relay SA, everything else through the GMAC one.
constexpr uint32_t kHmacRelayNet = 0x0a630000;

struct SaSpec {
  mipsec::Role role;
  mipsec::Mode mode;
  mipsec::AeadSuite suite;  // end only
  mipsec::MacAlg mac;  // none allowed for end
  mipsec::Coverage coverage;
  bool mkids;  // SKIP NSID 1 on both sides (else NSID 0)
};

// The SA pairs: out id = index + 1, in id = index + 101; keys, SPIs and wrapped Kp derived from the index.
const std::vector<SaSpec>& end_specs();  // 18: mode × suite × {no AH, GMAC, HMAC}
const std::vector<SaSpec>& nexthop_specs();  // 8: mode × MAC × coverage; ids follow the end SAs
const std::vector<SaSpec>& relay_specs();  // 2 out SAs of G1 towards G2 (GMAC headers, HMAC full spi)
uint32_t end_out_id(size_t i);
uint32_t nexthop_out_id(size_t i);
uint32_t relay_out_id(size_t i);
constexpr uint32_t kInOffset = 100;

// Installs; aborts with the validator's message if the cast itself is wrong.
void install(mipsec::EngineCore& e, const mipsec::SaConfig& c);
mipsec::SaConfig end_sa(size_t i, mipsec::Direction d);
mipsec::SaConfig nexthop_sa(size_t i, mipsec::Direction d);
mipsec::SaConfig relay_sa(size_t i, mipsec::Direction d);

// Engines. sender: every out SA. peeler: every in SA, local {G1, G2}, default route "forward as is".
// relay (G1): in next-hop SAs, out relay SAs, local {G1}, routes to G2 through the relay SAs.
// end (G2): in relay SAs and every end SA (or only the gateway's few), local {G2}, default route "forward as is".
// gateway: a small mixed set for raw INBOUND input (both modes, end and next-hop, relay routes); half its end
//          SAs carry selectors, one next-hop SA has relay off.
std::unique_ptr<mipsec::EngineCore> make_sender();
// The sender's out SAs with maxPackets 1, each having sealed one packet: every further seal is PUNT rekey.
std::unique_ptr<mipsec::EngineCore> make_spent_sender();
std::unique_ptr<mipsec::EngineCore> make_peeler();
std::unique_ptr<mipsec::EngineCore> make_relay();
std::unique_ptr<mipsec::EngineCore> make_end(bool every_end_sa = true);
std::unique_ptr<mipsec::EngineCore> make_gateway();

// G1 keys kSender's next packet keys itself (successor keys, docs/engine.md §4.3): its NSID-0 SKIP SAs are the
// templates, under one Kijn for every counter they use, with ids from kSuccessorIds on. successor_of(out, seed) is
// the sender's SA `out` under a new Kp made from `seed` and wrapped under that Kijn.
constexpr uint32_t kSuccessorIds = 5000;
mipsec::SaConfig successor_of(const mipsec::SaConfig& out, uint8_t seed);

// Whether `id` names an in SA of role nexthop (the cast's next-hop and relay SAs).
bool is_nexthop_in(uint32_t id);
// Whether gateway SA `id`'s selectors (if any) admit the delivered datagram d.
bool gateway_selectors_admit(uint32_t id, const Bytes& d);
// Whether G1's end SA `id` punts a datagram outside its selectors (selectorMiss 'punt').
bool gateway_selector_miss_punts(uint32_t id);

struct Result {
  mipsec::Verdict verdict;
  mipsec::Reason reason;
  uint32_t sa;
  uint32_t nexthop;
};

// Runs one op on pkt in a slot of exactly headroom + pkt.size() + tailroom bytes (heap, so ASan sees any
// read past it); pkt becomes the output packet when the op did not drop it.
Result run_op(mipsec::EngineCore& e, Bytes& pkt, uint32_t op, uint32_t arg0 = 0, uint32_t arg1 = 0,
              size_t headroom = 768, size_t tailroom = 64);

// An IPv4 datagram of `size` bytes (>= 20), protocol UDP, valid checksum, payload from seed.
Bytes datagram(size_t size, uint32_t src, uint32_t dst, uint8_t seed);
// Makes the first IPv4 header of p parse: version 4, sane IHL, total length = p.size(), checksum.
void repair_ipv4(Bytes& p, bool clear_fragment);

// Aborts with a message naming what broke (a finding for the fuzzer).
[[noreturn]] void finding(const char* what);

}  // namespace fuzz
