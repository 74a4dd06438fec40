// The JS-visible Engine object: a thin Node-API shell over EngineCore (native/xform/process.h).
#pragma once
#include <napi.h>
#include <memory>
#include "xform/process.h"

namespace mipsec {

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
