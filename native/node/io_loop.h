// binding.IoLoop: the Node-API shell over io::IoLoop (native/io/loop.h).
#pragma once
#include <napi.h>
#include <memory>
#include "io/loop.h"

namespace mipsec::io {

// Words per punted packet in onPunt's meta array: offset, length, reason, from, sa (src/engine/io.ts reads them).
constexpr uint32_t kPuntMetaWords = 5;

class IoLoopWrap : public Napi::ObjectWrap<IoLoopWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit IoLoopWrap(const Napi::CallbackInfo& info);
  ~IoLoopWrap() override;

 private:
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value Inject(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Running(const Napi::CallbackInfo& info);
  // Stops the workers, releases the punt function, drops the cleanup hook. Idempotent.
  void Shutdown();
  static void CleanupHook(void* self);

  std::shared_ptr<EngineCore> core_;
  std::shared_ptr<PuntSink> sink_;
  std::unique_ptr<IoLoop> loop_;
  Napi::FunctionReference on_punt_;
  napi_env env_ = nullptr;
  bool hooked_ = false;
};

// binding.offload: the loop's pure packet functions on their own, for tests: TCP split and coalesce (io/gso.h), and
// the ICMP 3/4 it answers too-big packets with (wire/icmp.h). Thin wrappers: the loop calls the same functions.
Napi::Object OffloadExports(Napi::Env env);

}  // namespace mipsec::io
