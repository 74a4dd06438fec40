// The JS face of native/io (the only file here that sees Node-API): binding.IoLoop wraps io::IoLoop, and
// punts cross to the JS thread in batches through one ThreadSafeFunction (one queued call at a time).
#include "io/binding.h"
#include <algorithm>
#include <cstring>
#include <mutex>
#include "engine/engine.h"
#include "io/gso.h"
#include "io/loop.h"

namespace mipsec::io {

namespace {

constexpr size_t kPuntQueuePackets = 4096;
constexpr uint32_t kPuntMetaWords = 5;  // offset, length, reason, from, sa

// Punts waiting for the JS thread: bounded; at most one drain call is queued on the ThreadSafeFunction.
class JsPuntSink : public PuntSink, public std::enable_shared_from_this<JsPuntSink> {
 public:
  explicit JsPuntSink(Napi::ThreadSafeFunction tsfn) : tsfn_(tsfn) {}

  size_t offer(std::vector<PuntPacket>&& packets) override {
    std::lock_guard<std::mutex> hold(mu_);
    const size_t take = std::min(packets.size(), kPuntQueuePackets - queue_.size());
    std::move(packets.begin(), packets.begin() + take, std::back_inserter(queue_));
    if (take && !scheduled_) {
      scheduled_ = true;
      // The queued call holds the sink, so it may run after the loop and its JS object are gone.
      auto self = shared_from_this();
      if (tsfn_.NonBlockingCall([self](Napi::Env env, Napi::Function onPunt) { self->drain(env, onPunt); }) != napi_ok) scheduled_ = false;
    }
    return take;
  }

  // Called after the workers are joined: no offer() follows, so the calls already queued are the last.
  void release() { tsfn_.Release(); }

 private:
  // On the JS thread: every queued punt in one call, onPunt(bytes: Buffer, meta: Uint32Array).
  void drain(Napi::Env env, Napi::Function onPunt) {
    std::vector<PuntPacket> batch;
    {
      std::lock_guard<std::mutex> hold(mu_);
      batch.swap(queue_);
      scheduled_ = false;
    }
    if (batch.empty()) return;
    size_t total = 0;
    for (const PuntPacket& p : batch) total += p.bytes.size();
    Napi::Buffer<uint8_t> bytes = Napi::Buffer<uint8_t>::New(env, total);
    Napi::Uint32Array meta = Napi::Uint32Array::New(env, batch.size() * kPuntMetaWords);
    size_t at = 0;
    for (size_t i = 0; i < batch.size(); i++) {
      const PuntPacket& p = batch[i];
      std::memcpy(bytes.Data() + at, p.bytes.data(), p.bytes.size());
      uint32_t* m = meta.Data() + i * kPuntMetaWords;
      m[0] = uint32_t(at);
      m[1] = uint32_t(p.bytes.size());
      m[2] = p.reason;
      m[3] = uint32_t(p.from);
      m[4] = p.sa;
      at += p.bytes.size();
    }
    onPunt.Call({bytes, meta});
  }

  Napi::ThreadSafeFunction tsfn_;
  std::mutex mu_;
  std::vector<PuntPacket> queue_;
  bool scheduled_ = false;
};

uint32_t u32_of(const Napi::Object& o, const char* name, uint32_t fallback) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("io config ") + name + " must be a number");
  return v.As<Napi::Number>().Uint32Value();
}

}  // namespace

Napi::Function IoLoopWrap::Define(Napi::Env env) {
  return DefineClass(env, "IoLoop",
                     {
                         InstanceMethod<&IoLoopWrap::Start>("start"),
                         InstanceMethod<&IoLoopWrap::Stop>("stop"),
                         InstanceMethod<&IoLoopWrap::Inject>("inject"),
                         InstanceMethod<&IoLoopWrap::Stats>("stats"),
                         InstanceMethod<&IoLoopWrap::Running>("running"),
                     });
}

// new IoLoop(engine: binding.Engine, onPunt: (bytes, meta) => void)
IoLoopWrap::IoLoopWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IoLoopWrap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) throw Napi::TypeError::New(env, "new IoLoop(engine, onPunt)");
  EngineWrap* engine = EngineWrap::FromObject(info[0].As<Napi::Object>());
  if (!engine) throw Napi::TypeError::New(env, "IoLoop needs the native engine object (binding.Engine)");
  core_ = engine->shared_core();
  if (!core_) throw Napi::Error::New(env, "the engine is closed (create a new one)");
  on_punt_ = Napi::Persistent(info[1].As<Napi::Function>());
}

IoLoopWrap::~IoLoopWrap() { Shutdown(); }

void IoLoopWrap::Shutdown() {
  if (loop_) loop_->stop();
  if (sink_) std::static_pointer_cast<JsPuntSink>(sink_)->release();
  sink_.reset();
  if (hooked_) {
    napi_remove_env_cleanup_hook(env_, CleanupHook, this);
    hooked_ = false;
  }
}

void IoLoopWrap::CleanupHook(void* self) {
  auto* wrap = static_cast<IoLoopWrap*>(self);
  wrap->hooked_ = false;  // node is removing the hook itself
  if (wrap->loop_) wrap->loop_->stop();
}

// start({ netns, tunName, mtu, addresses: Uint32Array (address, prefixLen) pairs, workers, offload, udpPort, pollMicros,
//         bindInterface, tunTable, deliverRoute })
Napi::Value IoLoopWrap::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (loop_) throw Napi::Error::New(env, "this I/O loop was already started (create a new one)");
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "start(config: object)");
  Napi::Object o = info[0].As<Napi::Object>();
  IoConfig cfg;
  if (o.Get("netns").IsString()) cfg.netns = o.Get("netns").As<Napi::String>().Utf8Value();
  if (!o.Get("tunName").IsString()) throw Napi::TypeError::New(env, "io config tunName must be a string");
  cfg.tun.name = o.Get("tunName").As<Napi::String>().Utf8Value();
  cfg.tun.mtu = u32_of(o, "mtu", cfg.tun.mtu);
  cfg.workers = u32_of(o, "workers", 1);
  cfg.tun.offload = !o.Get("offload").IsBoolean() || o.Get("offload").As<Napi::Boolean>().Value();
  const uint32_t udp_port = u32_of(o, "udpPort", 0);
  if (udp_port > 65535) throw Napi::RangeError::New(env, "io config udpPort must be 0..65535");
  cfg.udp_port = uint16_t(udp_port);
  cfg.poll_us = u32_of(o, "pollMicros", 0);
  if (o.Get("bindInterface").IsString()) cfg.bind_device = o.Get("bindInterface").As<Napi::String>().Utf8Value();
  cfg.tun_table = u32_of(o, "tunTable", 0);
  cfg.deliver_route = o.Get("deliverRoute").IsBoolean() && o.Get("deliverRoute").As<Napi::Boolean>().Value();
  Napi::Value addresses = o.Get("addresses");
  if (!addresses.IsUndefined()) {
    if (!addresses.IsTypedArray() || addresses.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
      throw Napi::TypeError::New(env, "io config addresses must be a Uint32Array of (address, prefix length) pairs");
    Napi::Uint32Array a = addresses.As<Napi::Uint32Array>();
    for (size_t i = 0; i + 1 < a.ElementLength(); i += 2) cfg.tun.addresses.push_back(TunAddress{a[i], uint8_t(std::min<uint32_t>(a[i + 1], 32))});
  }

  auto sink = std::make_shared<JsPuntSink>(Napi::ThreadSafeFunction::New(env, on_punt_.Value(), "mipsec-punt", 0, 1));
  auto loop = std::make_unique<IoLoop>(core_, sink);
  std::string err = loop->start(cfg);
  if (!err.empty()) {
    sink->release();
    throw Napi::Error::New(env, "I/O loop: " + err);
  }
  loop_ = std::move(loop);
  sink_ = sink;
  env_ = env;
  napi_add_env_cleanup_hook(env, CleanupHook, this);
  hooked_ = true;
  return env.Undefined();
}

Napi::Value IoLoopWrap::Stop(const Napi::CallbackInfo& info) {
  Shutdown();
  return info.Env().Undefined();
}

// inject(bytes: Uint8Array, meta: Uint32Array of (offset, length, via, quoteLength) quadruples) → packets taken;
// a packet's quote (Injected::quote) follows it in bytes.
Napi::Value IoLoopWrap::Inject(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    throw Napi::TypeError::New(env, "inject(bytes: Uint8Array, meta: Uint32Array)");
  if (!loop_ || !loop_->running()) throw Napi::Error::New(env, "the I/O loop is not running (start it first; a stopped loop cannot be restarted)");
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  Napi::Uint32Array meta = info[1].As<Napi::Uint32Array>();
  if (meta.ElementLength() % 4) throw Napi::RangeError::New(env, "inject meta must hold (offset, length, via, quoteLength) quadruples");
  std::vector<Injected> packets;
  for (size_t i = 0; i < meta.ElementLength(); i += 4) {
    const size_t off = meta[i], len = meta[i + 1], quote = meta[i + 3];
    const uint32_t via = meta[i + 2];
    if (off > bytes.ElementLength() || len > bytes.ElementLength() - off || quote > bytes.ElementLength() - off - len)
      throw Napi::RangeError::New(env, "inject packet " + std::to_string(i / 4) + " lies outside the bytes");
    if (via > uint32_t(Via::raw)) throw Napi::RangeError::New(env, "inject via must be 0..3");
    const uint8_t* at = bytes.Data() + off;
    const size_t kept = std::min(quote, kIcmpQuoteMax);
    packets.push_back(Injected{Via(via), std::vector<uint8_t>(at, at + len), std::vector<uint8_t>(at + len, at + len + kept)});
  }
  return Napi::Number::New(env, double(loop_->inject(std::move(packets))));
}

Napi::Value IoLoopWrap::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  for (int s = 0; s < S_COUNT; s++) o.Set(stat_names()[s], Napi::Number::New(env, loop_ ? double(loop_->stat(Stat(s))) : 0));
  o.Set("cpuMicros", Napi::Number::New(env, loop_ ? double(loop_->cpu_micros()) : 0));
  // Punts taken, by reason code (io.ts names them).
  Napi::Float64Array reasons = Napi::Float64Array::New(env, kPuntReasonSlots);
  for (size_t r = 0; r < kPuntReasonSlots; r++) reasons[r] = loop_ ? double(loop_->punt_reason(r)) : 0;
  o.Set("puntReasons", reasons);
  return o;
}

Napi::Value IoLoopWrap::Running(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), loop_ && loop_->running()); }

namespace {

Napi::Uint8Array bytes_arg(const Napi::CallbackInfo& info, size_t i, const char* usage) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(info.Env(), usage);
  return info[i].As<Napi::Uint8Array>();
}

// splitTcp4(superPacket, gsoSize) → the segments the TUN read path feeds to OUTBOUND, or null when unparsable.
Napi::Value SplitTcp4(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "splitTcp4(packet: Uint8Array, gsoSize: number)";
  Napi::Uint8Array p = bytes_arg(info, 0, usage);
  if (info.Length() < 2 || !info[1].IsNumber()) throw Napi::TypeError::New(env, usage);
  virtio_net_hdr h{};
  h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  h.gso_size = uint16_t(info[1].As<Napi::Number>().Uint32Value());
  std::vector<std::vector<uint8_t>> segments;
  const int n = segment_tcp4(h, p.Data(), p.ElementLength(), [&](size_t len) {
    segments.emplace_back(len);
    return segments.back().data();
  });
  if (n < 0) return env.Null();
  Napi::Array out = Napi::Array::New(env, segments.size());
  for (size_t i = 0; i < segments.size(); i++) out.Set(uint32_t(i), Napi::Buffer<uint8_t>::Copy(env, segments[i].data(), segments[i].size()));
  return out;
}

// coalesceTcp4(datagrams) → { runs: number[] (datagrams per write), writes: Buffer[] (vnet header + packet, or the
// datagram alone) }: exactly what the DELIVER path writes to an offloading TUN.
Napi::Value CoalesceTcp4(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "coalesceTcp4(datagrams: Uint8Array[])");
  Napi::Array in = info[0].As<Napi::Array>();
  std::vector<Napi::Uint8Array> d;
  for (uint32_t i = 0; i < in.Length(); i++) {
    Napi::Value v = in.Get(i);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) throw Napi::TypeError::New(env, "coalesceTcp4: every datagram must be a Uint8Array");
    d.push_back(v.As<Napi::Uint8Array>());
  }
  Napi::Array runs = Napi::Array::New(env), writes = Napi::Array::New(env);
  std::vector<uint8_t> out(kVnetHdrBytes + TcpCoalescer::kMaxSuper);
  std::vector<const uint8_t*> payloads(d.size());
  std::vector<size_t> sizes(d.size());
  for (size_t k = 0; k < d.size();) {
    TcpCoalescer run;
    size_t extra = 0;
    if (run.start(d[k].Data(), d[k].ElementLength())) {
      while (k + 1 + extra < d.size() && run.append(d[k + 1 + extra].Data(), d[k + 1 + extra].ElementLength())) {
        payloads[extra] = d[k + 1 + extra].Data() + run.headers();
        sizes[extra] = d[k + 1 + extra].ElementLength() - run.headers();
        extra++;
      }
    }
    const uint32_t at = runs.Length();
    runs.Set(at, Napi::Number::New(env, double(extra + 1)));
    if (extra == 0) writes.Set(at, Napi::Buffer<uint8_t>::Copy(env, d[k].Data(), d[k].ElementLength()));
    else writes.Set(at, Napi::Buffer<uint8_t>::Copy(env, out.data(), run.build(out.data(), payloads.data(), sizes.data(), extra)));
    k += 1 + extra;
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("runs", runs);
  o.Set("writes", writes);
  return o;
}

}  // namespace

Napi::Object OffloadExports(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("splitTcp4", Napi::Function::New<SplitTcp4>(env, "splitTcp4"));
  o.Set("coalesceTcp4", Napi::Function::New<CoalesceTcp4>(env, "coalesceTcp4"));
  return o;
}

}  // namespace mipsec::io
