// Node-API entry point: registers the engine's JS-visible surface.
#include <napi.h>
#include <openssl/opensslv.h>
#include "node/abi.h"
#include "node/engine.h"
#include "node/io_loop.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("opensslVersion", Napi::String::New(env, OPENSSL_VERSION_TEXT));
  exports.Set("abi", mipsec::AbiExports(env));
  exports.Set("Engine", mipsec::EngineWrap::Define(env));
  exports.Set("IoLoop", mipsec::io::IoLoopWrap::Define(env));
  exports.Set("offload", mipsec::io::OffloadExports(env));
  exports.Set("crypto", mipsec::CryptoExports(env));
  exports.Set("wire", mipsec::WireExports(env));
  return exports;
}

NODE_API_MODULE(mipsec, Init)
