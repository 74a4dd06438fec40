// binding.abi (native/node/abi.cc).
#pragma once
#include <napi.h>

namespace mipsec {

Napi::Object AbiExports(Napi::Env env);

}  // namespace mipsec
