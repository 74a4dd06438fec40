// The JS-visible Engine object: a thin Node-API shell over EngineCore (native/xform/process.h).
#pragma once
#include <napi.h>
#include <memory>
#include "xform/process.h"

namespace mipsec {

// installSa's numeric fields, one u32 each in this order (binding.abi.saWords names them): one typed array instead of
// an object whose properties the addon would look up one by one on a new key's first packet.
#define MIPSEC_SA_WORDS(X) \
  X(id, 0)                 \
  X(direction, 1)          \
  X(role, 2)               \
  X(mode, 3)               \
  X(src, 4)                \
  X(dst, 5)                \
  X(ahAlg, 6)              \
  X(ahSpi, 7)              \
  X(ahSeq, 8)              \
  X(coverage, 9)           \
  X(espSuite, 10)          \
  X(espSpi, 11)            \
  X(espSeq, 12)            \
  X(replayWindow, 13)      \
  X(replayFloor, 14)       \
  X(ttl, 15)               \
  X(maxPackets, 16)        \
  X(softPackets, 17)       \
  X(relay, 18)             \
  X(selectorMiss, 19)      \
  X(selectorMissTable, 20) \
  X(selectorTunnelSrc, 21) \
  X(selectorTunnelDst, 22) \
  X(plainTable, 23)
#define MIPSEC_SA_WORD_ENUM(name, index) SW_##name = index,
enum SaWord : uint32_t { MIPSEC_SA_WORDS(MIPSEC_SA_WORD_ENUM) SW_COUNT = 24 };
#undef MIPSEC_SA_WORD_ENUM
#define MIPSEC_SA_WORD_ONE(name, index) +1
static_assert(SW_COUNT == 0 MIPSEC_SA_WORDS(MIPSEC_SA_WORD_ONE), "SW_COUNT counts MIPSEC_SA_WORDS");
#undef MIPSEC_SA_WORD_ONE

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit EngineWrap(const Napi::CallbackInfo& info);
  // The EngineWrap behind a JS object, or null when it is not one (checked by a type tag, not a cast).
  static EngineWrap* FromObject(const Napi::Object& o);
  // The core, shared with whoever runs packets on other threads (the I/O loop); null once closed.
  std::shared_ptr<EngineCore> shared_core() const { return core_; }

 private:
  Napi::Value InstallSa(const Napi::CallbackInfo& info);
  Napi::Value RemoveSa(const Napi::CallbackInfo& info);
  Napi::Value SetRoutes(const Napi::CallbackInfo& info);
  Napi::Value SetPolicies(const Napi::CallbackInfo& info);
  Napi::Value SetLocalAddresses(const Napi::CallbackInfo& info);
  Napi::Value Process(const Napi::CallbackInfo& info);
  Napi::Value ProcessAsync(const Napi::CallbackInfo& info);
  Napi::Value Counters(const Napi::CallbackInfo& info);
  Napi::Value SaStats(const Napi::CallbackInfo& info);
  Napi::Value SetSuccessors(const Napi::CallbackInfo& info);
  Napi::Value TakeSuccessors(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  EngineCore& core(Napi::Env env);

  std::shared_ptr<EngineCore> core_;
  // One external ArrayBuffer over the counters for the engine's lifetime (V8 allows one per memory block).
  Napi::ObjectReference counters_;
};

// binding.crypto: the raw primitives, for vector tests.
Napi::Object CryptoExports(Napi::Env env);
// binding.wire: parsers with no engine op of their own (ICMP 40).
Napi::Object WireExports(Napi::Env env);

}  // namespace mipsec
