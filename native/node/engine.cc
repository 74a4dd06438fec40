#include "node/engine.h"
#include <cstring>
#include <openssl/crypto.h>

namespace mipsec {

namespace {

// Copies a Uint8Array argument into dst (capacity cap); returns its length, 0 if absent.
size_t bytes_arg(const Napi::CallbackInfo& info, size_t i, const char* name, uint8_t* dst, size_t cap) {
  Napi::Value v = info[i];
  if (v.IsUndefined() || v.IsNull()) return 0;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(info.Env(), std::string("sa field ") + name + " must be a Uint8Array");
  Napi::Uint8Array a = v.As<Napi::Uint8Array>();
  if (a.ElementLength() > cap)
    throw Napi::RangeError::New(info.Env(), std::string("sa field ") + name + " is too long");
  std::memcpy(dst, a.Data(), a.ElementLength());
  return a.ElementLength();
}

// Copies a Uint32Array argument of (network, length) pairs into `dst`; returns how many, or throws on a malformed one.
uint8_t prefixes_arg(const Napi::CallbackInfo& info, size_t i, const char* name, SelectorPrefix* dst) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    throw Napi::TypeError::New(info.Env(),
                               std::string("sa field ") + name + " must be a Uint32Array of (network, length) pairs");
  Napi::Uint32Array a = v.As<Napi::Uint32Array>();
  if (a.ElementLength() % 2 != 0 || a.ElementLength() > 2 * kMaxSelectorPrefixes)
    throw Napi::RangeError::New(info.Env(),
                                std::string("sa field ") + name + " must hold at most 32 (network, length) pairs");
  for (size_t k = 0; k < a.ElementLength(); k += 2) {
    if (a[k + 1] > 32)
      throw Napi::RangeError::New(info.Env(), std::string("sa field ") + name + ": prefix length must be 0..32");
    dst[k / 2] = SelectorPrefix{a[k], uint8_t(a[k + 1])};
  }
  return uint8_t(a.ElementLength() / 2);
}

// installSa(words, skipHeader?, ahKey?, espKey?, selectorSrc?, selectorDst?, plainSrc?): words holds SW_COUNT u32s
// (SaWord); selectors are on when selectorSrc is given, plain when plainSrc is.
SaConfig config_from(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
      info[0].As<Napi::Uint32Array>().ElementLength() != SW_COUNT)
    throw Napi::TypeError::New(env,
                               "installSa(words: Uint32Array of binding.abi.saWordCount, skipHeader?, ahKey?, "
                               "espKey?, selectorSrc?, selectorDst?, plainSrc?)");
  const uint32_t* w = info[0].As<Napi::Uint32Array>().Data();
  SaConfig c;
  c.id = w[SW_id];
  c.direction = Direction(w[SW_direction] & 1);
  c.role = Role(w[SW_role] & 1);
  c.mode = Mode(w[SW_mode] & 1);
  c.src = w[SW_src];
  c.dst = w[SW_dst];
  c.skip_len = bytes_arg(info, 1, "skipHeader", c.skip_header, sizeof c.skip_header);
  if (w[SW_ahAlg] > 2) throw Napi::RangeError::New(env, "sa field ahAlg must be 0, 1 or 2");
  if (w[SW_espSuite] > 3) throw Napi::RangeError::New(env, "sa field espSuite must be 0..3");
  c.ah_alg = MacAlg(w[SW_ahAlg]);
  c.ah_key_len = bytes_arg(info, 2, "ahKey", c.ah_key, sizeof c.ah_key);
  c.ah_spi = w[SW_ahSpi];
  c.ah_seq = w[SW_ahSeq];
  c.coverage = Coverage(w[SW_coverage] & 1);
  c.esp_suite = AeadSuite(w[SW_espSuite]);
  c.esp_key_len = bytes_arg(info, 3, "espKey", c.esp_key, sizeof c.esp_key);
  c.esp_spi = w[SW_espSpi];
  c.esp_seq = w[SW_espSeq];
  c.replay_window = w[SW_replayWindow];
  c.replay_floor = w[SW_replayFloor];
  if (w[SW_ttl] > 255) throw Napi::RangeError::New(env, "sa field ttl must be 0..255");
  c.ttl = uint8_t(w[SW_ttl]);
  c.max_packets = w[SW_maxPackets];  // 0 = no limit; the binding passes 0 for in SAs
  c.soft_packets = w[SW_softPackets];  // 0 = no event; likewise 0 for in SAs
  c.relay = w[SW_relay] != 0;
  if (w[SW_selectorMiss] > 2) throw Napi::RangeError::New(env, "sa field selectorMiss must be 0, 1 or 2");
  c.selector_miss = SelectorMiss(w[SW_selectorMiss]);
  c.selector_miss_table = w[SW_selectorMissTable];
  c.selectors.on = !info[4].IsUndefined();  // past the last argument, info[i] is undefined
  if (c.selectors.on) {
    c.selectors.src_count = prefixes_arg(info, 4, "selectorSrc", c.selectors.src);
    c.selectors.dst_count = prefixes_arg(info, 5, "selectorDst", c.selectors.dst);
  }
  c.plain_on = !info[6].IsUndefined();
  if (c.plain_on) {
    c.plain_src_count = prefixes_arg(info, 6, "plainSrc", c.plain_src);
    c.plain_table = w[SW_plainTable];
  }
  c.selectors.tunnel_src = w[SW_selectorTunnelSrc];
  c.selectors.tunnel_dst = w[SW_selectorTunnelDst];
  return c;
}

std::vector<uint32_t> u32_array(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a Uint32Array");
  Napi::Uint32Array a = v.As<Napi::Uint32Array>();
  return std::vector<uint32_t>(a.Data(), a.Data() + a.ElementLength());
}

// The batch arguments (buffer, desc, count, slotSize), checked so no packet can name memory outside them.
BatchView batch_from(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array || !info[2].IsNumber() ||
      !info[3].IsNumber())
    throw Napi::TypeError::New(env, "process(buffer: Uint8Array, desc: Uint32Array, count: number, slotSize: number)");
  Napi::Uint8Array buf = info[0].As<Napi::Uint8Array>();
  Napi::Uint32Array desc = info[1].As<Napi::Uint32Array>();
  const double count = info[2].As<Napi::Number>().DoubleValue();
  const double slot = info[3].As<Napi::Number>().DoubleValue();
  if (!(count >= 0) || count != double(size_t(count)) || size_t(count) * kDescWords > desc.ElementLength())
    throw Napi::RangeError::New(env, "batch count exceeds the descriptor array (8 words per packet)");
  if (!(slot >= 1) || slot != double(size_t(slot)) || slot > 4294967295.0)
    throw Napi::RangeError::New(env, "batch slotSize must be a positive integer");
  if (size_t(count) * size_t(slot) > buf.ElementLength() || buf.ElementLength() > 0xffffffffu)
    throw Napi::RangeError::New(env, "batch buffer is smaller than count × slotSize (or larger than 4 GiB)");
  return BatchView{buf.Data(), buf.ElementLength(), desc.Data(), size_t(count), size_t(slot)};
}

class BatchWorker : public Napi::AsyncWorker {
 public:
  BatchWorker(Napi::Env env, std::shared_ptr<EngineCore> core, BatchView view, Napi::Value buffer, Napi::Value desc)
      : Napi::AsyncWorker(env, "mipsec:batch"),
        deferred_(Napi::Promise::Deferred::New(env)),
        core_(std::move(core)),
        snapshot_(core_->table.snapshot()),  // the table as it is when the batch is submitted
        view_(view) {
    // Referenced until the batch ends, so the memory the worker writes cannot be collected.
    buffer_ = Napi::Persistent(buffer.As<Napi::Object>());
    desc_ = Napi::Persistent(desc.As<Napi::Object>());
  }
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override { core_->process(view_, *snapshot_); }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<EngineCore> core_;
  std::shared_ptr<const Tables> snapshot_;
  BatchView view_;
  Napi::ObjectReference buffer_, desc_;
};

// Marks Engine objects so FromObject can tell them from any other wrapped object.
constexpr napi_type_tag kEngineTag = {0x6d69707365632d65ull, 0x6e67696e652d7631ull};

void release_counters(Napi::Env, void*, std::shared_ptr<Counters>* hold) { delete hold; }

}  // namespace

Napi::Function EngineWrap::Define(Napi::Env env) {
  return DefineClass(env, "Engine",
                     {
                         InstanceMethod<&EngineWrap::InstallSa>("installSa"),
                         InstanceMethod<&EngineWrap::RemoveSa>("removeSa"),
                         InstanceMethod<&EngineWrap::SetRoutes>("setRoutes"),
                         InstanceMethod<&EngineWrap::SetPolicies>("setPolicies"),
                         InstanceMethod<&EngineWrap::SetLocalAddresses>("setLocalAddresses"),
                         InstanceMethod<&EngineWrap::Process>("process"),
                         InstanceMethod<&EngineWrap::ProcessAsync>("processAsync"),
                         InstanceMethod<&EngineWrap::Counters>("counters"),
                         InstanceMethod<&EngineWrap::SaStats>("saStats"),
                         InstanceMethod<&EngineWrap::SetSuccessors>("setSuccessors"),
                         InstanceMethod<&EngineWrap::TakeSuccessors>("takeSuccessors"),
                         InstanceMethod<&EngineWrap::Close>("close"),
                     });
}

EngineWrap::EngineWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<EngineWrap>(info), core_(std::make_shared<EngineCore>()) {
  auto* hold = new std::shared_ptr<mipsec::Counters>(core_->counters);
  Napi::ArrayBuffer ab =
      Napi::ArrayBuffer::New(info.Env(), (*hold)->value, sizeof(mipsec::Counters), release_counters, hold);
  counters_ = Napi::Persistent(ab.As<Napi::Object>());
  napi_type_tag_object(info.Env(), info.This(), &kEngineTag);
}

EngineWrap* EngineWrap::FromObject(const Napi::Object& o) {
  bool tagged = false;
  if (napi_check_object_type_tag(o.Env(), o, &kEngineTag, &tagged) != napi_ok || !tagged) return nullptr;
  return Unwrap(o);
}

EngineCore& EngineWrap::core(Napi::Env env) {
  if (!core_) throw Napi::Error::New(env, "engine is closed (create a new one)");
  return *core_;
}

Napi::Value EngineWrap::InstallSa(const Napi::CallbackInfo& info) {
  SaConfig cfg = config_from(info);
  std::string err = core(info.Env()).table.install(cfg);
  if (!err.empty()) throw Napi::Error::New(info.Env(), err);
  return info.Env().Undefined();
}

Napi::Value EngineWrap::RemoveSa(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "removeSa(id: number)");
  return Napi::Boolean::New(info.Env(), core(info.Env()).table.remove(info[0].As<Napi::Number>().Uint32Value()));
}

// routes: Uint32Array of (network, length, sa) triples.
Napi::Value EngineWrap::SetRoutes(const Napi::CallbackInfo& info) {
  std::vector<uint32_t> flat = u32_array(info[0], "routes");
  if (flat.size() % 3 != 0) throw Napi::RangeError::New(info.Env(), "routes must hold (network, length, sa) triples");
  std::vector<RouteEntry> routes;
  for (size_t i = 0; i < flat.size(); i += 3) {
    if (flat[i + 1] > 32) throw Napi::RangeError::New(info.Env(), "route prefix length must be 0..32");
    routes.push_back(RouteEntry{flat[i], uint8_t(flat[i + 1]), flat[i + 2]});
  }
  core(info.Env()).table.set_routes(routes);
  return info.Env().Undefined();
}

// policies: Uint32Array of records (table, network, length, action, sa, wrap count, src count, wrap SA ids…,
// src (network, length) pairs…, and for action tunnel the tunnel's outer source and destination), built and checked by
// src/engine/policy.ts; checked again here (check_policies), every error naming the policy index and field.
Napi::Value EngineWrap::SetPolicies(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<uint32_t> flat = u32_array(info[0], "policies");
  std::vector<PolicyEntry> policies;
  std::vector<SelectorPrefix> src;
  constexpr size_t kFixed = 8;
  for (size_t i = 0; i < flat.size();) {
    const std::string where = "policy " + std::to_string(policies.size()) + ": ";
    if (flat.size() - i < kFixed)
      throw Napi::RangeError::New(
          env,
          where + "record truncated (table, network, length, action, sa, wrap count, src count, proto, wraps…, src…)");
    PolicyEntry p;
    p.table = flat[i];
    p.network = flat[i + 1];
    if (flat[i + 2] > 32) throw Napi::RangeError::New(env, where + "prefix length must be 0..32");
    p.length = uint8_t(flat[i + 2]);
    if (flat[i + 3] < PA_PROTECT || flat[i + 3] > kLastPolicyAction)
      throw Napi::RangeError::New(env, where + kPolicyActionRange);
    p.action = PolicyAction(flat[i + 3]);
    p.sa = flat[i + 4];
    if (flat[i + 5] > uint32_t(kMaxPolicyWraps)) throw Napi::RangeError::New(env, where + "wrap: at most 7 wrap SAs");
    if (flat[i + 6] > uint32_t(kMaxPolicySrc))
      throw Napi::RangeError::New(env, where + "src: at most 32 source prefixes");
    p.wraps = uint8_t(flat[i + 5]);
    p.src_count = uint8_t(flat[i + 6]);
    // proto + 1, 0 = any protocol.
    if (flat[i + 7] > 256) throw Napi::RangeError::New(env, where + "proto must be an IPv4 protocol number 0..255");
    p.proto = int16_t(int32_t(flat[i + 7]) - 1);
    i += kFixed;
    const size_t tunnel_words = p.action == PA_TUNNEL ? 2 : 0;
    if (flat.size() - i < size_t(p.wraps) + 2 * size_t(p.src_count) + tunnel_words)
      throw Napi::RangeError::New(env,
                                  where + "record truncated (wrap SA ids, src prefixes or tunnel addresses missing)");
    for (int w = 0; w < p.wraps; w++) p.wrap[w] = flat[i++];
    p.src_first = uint32_t(src.size());
    for (int k = 0; k < p.src_count; k++, i += 2) {
      if (flat[i + 1] > 32)
        throw Napi::RangeError::New(env, where + "src[" + std::to_string(k) + "] prefix length must be 0..32");
      src.push_back(SelectorPrefix{flat[i], uint8_t(flat[i + 1])});
    }
    if (tunnel_words) {
      p.tunnel_src = flat[i++];
      p.tunnel_dst = flat[i++];
    }
    policies.push_back(p);
  }
  std::string err = core(env).table.set_policies(std::move(policies), std::move(src));
  if (!err.empty()) throw Napi::RangeError::New(env, err);
  return env.Undefined();
}

Napi::Value EngineWrap::SetLocalAddresses(const Napi::CallbackInfo& info) {
  core(info.Env()).table.set_local(u32_array(info[0], "addresses"));
  return info.Env().Undefined();
}

Napi::Value EngineWrap::Process(const Napi::CallbackInfo& info) {
  EngineCore& c = core(info.Env());
  c.process(batch_from(info));
  return info.Env().Undefined();
}

Napi::Value EngineWrap::ProcessAsync(const Napi::CallbackInfo& info) {
  core(info.Env());
  BatchView view = batch_from(info);
  auto* worker = new BatchWorker(info.Env(), core_, view, info[0], info[1]);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value EngineWrap::Counters(const Napi::CallbackInfo& info) { return counters_.Value(); }

Napi::Value EngineWrap::SaStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "saStats(id: number)");
  std::shared_ptr<const Tables> t = core(env).table.snapshot();
  Sa* sa = t->find(info[0].As<Napi::Number>().Uint32Value());
  if (!sa) return env.Undefined();
  Sa::Stats s = sa->stats();
  Napi::Object o = Napi::Object::New(env);
  o.Set("packets", Napi::BigInt::New(env, s.packets));
  o.Set("bytes", Napi::BigInt::New(env, s.bytes));
  o.Set("ahSeq", Napi::Number::New(env, s.ah_seq));
  o.Set("espSeq", Napi::Number::New(env, s.esp_seq));
  return o;
}

// Frees every SA once no batch holds it (a running processAsync keeps its snapshot until it ends).
// setSuccessors(words, kijns): words = validUntil, windowStart, idCount, ids…, peerCount, then per peer address,
// templateCount, templates…, kijnCount, n…; kijns holds each n's Kijn (32 bytes) in that order; blocked (Float64Array)
// the 52-bit digests of tuples not to key. src/engine/native.ts encodes it from a SuccessorConfig.
Napi::Value EngineWrap::SetSuccessors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<uint32_t> w = u32_array(info[0], "setSuccessors words");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      !info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw Napi::TypeError::New(env, "setSuccessors(words: Uint32Array, kijns: Uint8Array, blocked: Float64Array)");
  Napi::Uint8Array kijns = info[1].As<Napi::Uint8Array>();
  Napi::Float64Array blocked = info[2].As<Napi::Float64Array>();
  size_t at = 0, kijn_at = 0;
  const auto next = [&]() {
    if (at >= w.size()) throw Napi::RangeError::New(env, "setSuccessors words end early");
    return w[at++];
  };
  SuccessorConfig c;
  c.valid_until = next();
  c.window_start = next();
  for (uint32_t i = 0, n = next(); i < n; i++) c.ids.push_back(next());
  for (uint32_t i = 0, peers = next(); i < peers; i++) {
    SuccessorPeer& p = c.peers.emplace_back();
    p.address = next();
    for (uint32_t k = 0, n = next(); k < n; k++) p.templates.push_back(next());
    for (uint32_t k = 0, n = next(); k < n; k++) {
      auto& [counter, kijn] = p.kijns.emplace_back();
      counter = next();
      if (kijn_at + kKijnBytes > kijns.ElementLength())
        throw Napi::RangeError::New(env, "setSuccessors kijns holds fewer Kijn than the words name");
      std::memcpy(kijn.data(), kijns.Data() + kijn_at, kKijnBytes);
      kijn_at += kKijnBytes;
    }
  }
  if (at != w.size() || kijn_at != kijns.ElementLength())
    throw Napi::RangeError::New(env, "setSuccessors words or kijns have more than the counts name");
  for (size_t i = 0; i < blocked.ElementLength(); i++) c.blocked.push_back(uint64_t(blocked[i]));
  core(env).successors.configure(std::move(c));
  return env.Undefined();
}

// takeSuccessors() → [{ id, template, role, src, dst, skipHeader }]: the SAs keyed since the last call, oldest first
// (role 'end' | 'nexthop', src and dst the outer addresses as u32).
Napi::Value EngineWrap::TakeSuccessors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<KeyedSuccessor> keyed = core(env).successors.take();
  Napi::Array out = Napi::Array::New(env, keyed.size());
  for (size_t i = 0; i < keyed.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", keyed[i].id);
    o.Set("template", keyed[i].template_id);
    o.Set("role", keyed[i].role == Role::end ? "end" : "nexthop");
    o.Set("src", keyed[i].src);
    o.Set("dst", keyed[i].dst);
    o.Set("skipHeader", Napi::Buffer<uint8_t>::Copy(env, keyed[i].skip_header, keyed[i].skip_len));
    out.Set(uint32_t(i), o);
  }
  return out;
}

Napi::Value EngineWrap::Close(const Napi::CallbackInfo& info) {
  if (core_) core_->successors.configure({});
  if (core_) core_->table.clear();
  core_.reset();
  return info.Env().Undefined();
}

}  // namespace mipsec
