// binding.abi: every number JS and the native side must agree on, from the lists that define them natively
// (engine/abi.h, io/batch.h, io/loop.h, node/io_loop.h). test/engine/abi.test.ts compares it with the TS tables.
#include <cctype>
#include <string>
#include "crypto/aead.h"
#include "io/loop.h"
#include "node/abi.h"
#include "node/io_loop.h"
#include "sa/sa.h"
#include "wire/ah.h"
#include "wire/icmp.h"

namespace mipsec {

namespace {

// Sets object[name] = value, name being the enumerator without its prefix ("R_BAD_AH" → "BAD_AH"), lower-cased if asked.
void put(Napi::Object object, const char* enumerator, double value, bool lower) {
  std::string name(enumerator);
  name.erase(0, name.find('_') + 1);
  if (lower)
    for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
  object.Set(name, Napi::Number::New(object.Env(), value));
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
  abi.Set("counterSlots", number(kCounterSlots));
  abi.Set("verdictCounterBase", number(kVerdictCounterBase));
  abi.Set("descWords", number(kDescWords));
  abi.Set("maxLayers", number(kMaxLayers));
  abi.Set("maxPolicyWraps", number(kMaxPolicyWraps));
  abi.Set("maxPolicySrc", number(kMaxPolicySrc));
  abi.Set("maxSelectorPrefixes", number(kMaxSelectorPrefixes));

  Napi::Object ah = table("ahAlgs"), esp = table("espSuites");
  ah.Set("gmac-aes128", number(double(MacAlg::gmac_aes128)));
  ah.Set("hmac-sha256-128", number(double(MacAlg::hmac_sha256_128)));
  esp.Set("aes128gcm", number(double(AeadSuite::aes128gcm)));
  esp.Set("aes256gcm", number(double(AeadSuite::aes256gcm)));
  esp.Set("chacha20poly1305", number(double(AeadSuite::chacha20poly1305)));

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
