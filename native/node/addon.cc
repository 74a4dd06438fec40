// Node-API entry point: registers the engine's JS-visible surface.
#include <napi.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <openssl/opensslv.h>
#include "node/abi.h"
#include "node/engine.h"
#include "node/io_loop.h"

// limitMallocArenas(n): at most n glibc malloc arenas for the threads started after it (false where it cannot).
// Each worker thread would get an arena of its own, and SA churn on a gateway that takes new keys all the time
// (installs on the JS thread, frees wherever the last reference goes) grew their RSS for the whole process' life.
static Napi::Value LimitMallocArenas(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "limitMallocArenas(n: number)");
  const int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1) throw Napi::RangeError::New(env, "limitMallocArenas: n must be at least 1");
#ifdef __GLIBC__
  return Napi::Boolean::New(env, mallopt(M_ARENA_MAX, n) == 1);
#else
  return Napi::Boolean::New(env, false);
#endif
}

// trimMalloc(): hands the free memory of every glibc malloc arena back to the kernel (malloc_trim(0)); true if some
// went back. Freed chunks amid live ones keep their pages otherwise, and the arenas of threads that churn SAs and
// batches keep growing the RSS of a daemon that runs for months.
static Napi::Value TrimMalloc(const Napi::CallbackInfo& info) {
#ifdef __GLIBC__
  return Napi::Boolean::New(info.Env(), malloc_trim(0) == 1);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("opensslVersion", Napi::String::New(env, OPENSSL_VERSION_TEXT));
  exports.Set("abi", mipsec::AbiExports(env));
  exports.Set("Engine", mipsec::EngineWrap::Define(env));
  exports.Set("IoLoop", mipsec::io::IoLoopWrap::Define(env));
  exports.Set("offload", mipsec::io::OffloadExports(env));
  exports.Set("crypto", mipsec::CryptoExports(env));
  exports.Set("wire", mipsec::WireExports(env));
  exports.Set("limitMallocArenas", Napi::Function::New(env, LimitMallocArenas, "limitMallocArenas"));
  exports.Set("trimMalloc", Napi::Function::New(env, TrimMalloc, "trimMalloc"));
  return exports;
}

NODE_API_MODULE(mipsec, Init)
