// binding.abi: every number JS and the native side must agree on, read from where each is defined natively (the lists
// of engine/abi.h, the loop's headers, the SA enums). test/engine/abi.test.ts compares it with the TS tables.
#include <cctype>
#include <initializer_list>
#include <string>
#include <utility>
#include "crypto/aead.h"
#include "io/loop.h"
#include "node/abi.h"
#include "node/engine.h"
#include "node/io_loop.h"
#include "sa/replay.h"
#include "sa/sa.h"
#include "wire/ah.h"
#include "wire/icmp.h"
#include "wire/skip.h"

namespace mipsec {

namespace {

// The JS name of an enumerator: without its prefix ("R_BAD_AH" → "BAD_AH"), lower-cased if asked.
std::string js_name(const char* enumerator, bool lower) {
  std::string name(enumerator);
  name.erase(0, name.find('_') + 1);
  if (lower)
    for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

void put(Napi::Object object, const char* enumerator, double value, bool lower) {
  object.Set(js_name(enumerator, lower), Napi::Number::New(object.Env(), value));
}

}  // namespace

Napi::Object AbiExports(Napi::Env env) {
  Napi::Object abi = Napi::Object::New(env);
  auto table = [&](const char* key) {
    Napi::Object t = Napi::Object::New(env);
    abi.Set(key, t);
    return t;
  };
  auto number = [&](double n) { return Napi::Number::New(env, n); };

  Napi::Object ops = table("ops"), verdicts = table("verdicts"), reasons = table("reasons");
  Napi::Object desc = table("desc"), actions = table("policyActions");
#define MIPSEC_PUT_OP(name, value) put(ops, #name, value, false);
#define MIPSEC_PUT_VERDICT(name, value) put(verdicts, #name, value, false);
#define MIPSEC_PUT_REASON(name, value) put(reasons, #name, value, true);
#define MIPSEC_PUT_DESC(name, value) put(desc, #name, value, true);
#define MIPSEC_PUT_ACTION(name, value) put(actions, #name, value, true);
  MIPSEC_OPS(MIPSEC_PUT_OP)
  MIPSEC_VERDICTS(MIPSEC_PUT_VERDICT)
  MIPSEC_REASONS(MIPSEC_PUT_REASON)
  MIPSEC_DESC_WORDS(MIPSEC_PUT_DESC)
  MIPSEC_POLICY_ACTIONS(MIPSEC_PUT_ACTION)
  // The reasons whose verdict is PUNT (verdict_for); every other reason is a drop.
  Napi::Array punts = Napi::Array::New(env);
#define MIPSEC_PUT_PUNT(name, value) \
  if (verdict_for(name) == V_PUNT) punts.Set(punts.Length(), js_name(#name, true));
  MIPSEC_REASONS(MIPSEC_PUT_PUNT)
  abi.Set("puntReasons", punts);
  abi.Set("counterSlots", number(kCounterSlots));
  abi.Set("verdictCounterBase", number(kVerdictCounterBase));
  abi.Set("descWords", number(kDescWords));
  abi.Set("maxLayers", number(kMaxLayers));
  abi.Set("maxPolicyWraps", number(kMaxPolicyWraps));
  abi.Set("maxPolicySrc", number(kMaxPolicySrc));
  abi.Set("maxSelectorPrefixes", number(kMaxSelectorPrefixes));

  // SAs (installSa's fields): algorithm codes, key bytes (salt included), SKIP algorithm numbers, the 0/1 fields.
  Napi::Object ah = table("ahAlgs"), esp = table("espSuites"), key_bytes = table("keyBytes"), skip = table("skipAlgs");
  Napi::Object kij = Napi::Object::New(env), crypt = Napi::Object::New(env), mac = Napi::Object::New(env);
  kij.Set("aes256-kw", number(kKijAes256Kw));
  skip.Set("kij", kij);
  skip.Set("crypt", crypt);
  skip.Set("mac", mac);
  for (const auto& [name, alg] :
       {std::pair{"gmac-aes128", MacAlg::gmac_aes128}, {"hmac-sha256-128", MacAlg::hmac_sha256_128}}) {
    ah.Set(name, number(double(alg)));
    key_bytes.Set(name, number(double(mac_key_bytes(alg))));
    mac.Set(name, number(skip_mac_alg(alg)));
  }
  for (const auto& [name, suite] : {std::pair{"aes128gcm", AeadSuite::aes128gcm},
                                    {"aes256gcm", AeadSuite::aes256gcm},
                                    {"chacha20poly1305", AeadSuite::chacha20poly1305}}) {
    esp.Set(name, number(double(suite)));
    key_bytes.Set(name, number(double(aead_key_bytes(suite) + kSaltBytes)));
    crypt.Set(name, number(skip_crypt_alg(suite)));
  }
  Napi::Object sa = table("saFields");
  using Values = std::initializer_list<std::pair<const char*, uint8_t>>;
  auto field = [&](const char* key, Values values) {
    Napi::Object f = Napi::Object::New(env);
    for (const auto& [name, value] : values) f.Set(name, number(value));
    sa.Set(key, f);
  };
  field("direction", {{"out", uint8_t(Direction::out)}, {"in", uint8_t(Direction::in)}});
  field("role", {{"end", uint8_t(Role::end)}, {"nexthop", uint8_t(Role::nexthop)}});
  field("mode", {{"skip", uint8_t(Mode::skip)}, {"spi", uint8_t(Mode::spi)}});
  field("coverage", {{"full", uint8_t(Coverage::full)}, {"headers", uint8_t(Coverage::headers)}});
  Napi::Object words = table("saWords");
#define MIPSEC_PUT_SA_WORD(name, index) words.Set(#name, number(index));
  MIPSEC_SA_WORDS(MIPSEC_PUT_SA_WORD)
#undef MIPSEC_PUT_SA_WORD
  abi.Set("saWordCount", number(SW_COUNT));
  abi.Set("skipSpi", number(kSkipSpi));
  abi.Set("minSpi", number(kMinSpi));
  abi.Set("maxReplayWindow", number(kMaxReplayWindow));

  // The I/O loop: counters by name, punt and inject metadata, where a packet came from, how it is injected.
  Napi::Array stats = Napi::Array::New(env, io::S_COUNT);
  for (uint32_t s = 0; s < io::S_COUNT; s++) stats.Set(s, Napi::String::New(env, io::stat_names()[s]));
  abi.Set("ioStats", stats);
  abi.Set("maxPacket", number(io::kMaxPacket));
  abi.Set("icmpQuoteMax", number(kIcmpQuoteMax));
  abi.Set("puntMetaWords", number(io::kPuntMetaWords));
  abi.Set("injectMetaWords", number(sizeof(io::InjectMeta) / sizeof(uint32_t)));
  abi.Set("puntReasonSlots", number(io::kPuntReasonSlots));
  Napi::Object from = table("from"), via = table("via");
  from.Set("tun", number(double(io::From::tun)));
  from.Set("raw", number(double(io::From::raw)));
  via.Set("outbound", number(double(io::Via::outbound)));
  via.Set("inbound", number(double(io::Via::inbound)));
  via.Set("tun", number(double(io::Via::tun)));
  via.Set("raw", number(double(io::Via::raw)));
  return abi;
}

}  // namespace mipsec
