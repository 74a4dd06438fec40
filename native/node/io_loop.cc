// The JS face of native/io: binding.IoLoop wraps io::IoLoop, and
// punts cross to the JS thread in batches through one ThreadSafeFunction (one queued call at a time).
#include "node/io_loop.h"
#include <algorithm>
#include <cstring>
#include <mutex>
#include "node/engine.h"
#include "io/gso.h"
#include "io/loop.h"
#include "wire/fragment.h"
#include "wire/icmp.h"

namespace mipsec::io {

namespace {

constexpr size_t kPuntQueuePackets = 4096;

// Punts waiting for the JS thread: bounded; at most one drain call is queued on the ThreadSafeFunction. Two
// batches, refilled in turn: the workers copy into `filling_`, the JS thread swaps it with `draining_` and copies
// that into one Buffer. Neither is freed between drains, so no packet's bytes are allocated on one thread and freed
// on another (glibc's per-thread arenas fragmented under that, issue 11 item 5).
class JsPuntSink : public PuntSink, public std::enable_shared_from_this<JsPuntSink> {
 public:
  explicit JsPuntSink(Napi::ThreadSafeFunction tsfn) : tsfn_(tsfn) {}

  size_t offer(const PuntBatch& packets) override {
    std::lock_guard<std::mutex> hold(mu_);
    const size_t take = std::min(packets.size(), kPuntQueuePackets - filling_.size());
    for (size_t i = 0; i < take; i++) filling_.add(packets, i);
    if (take && !scheduled_) {
      scheduled_ = true;
      // The queued call holds the sink, so it may run after the loop and its JS object are gone.
      auto self = shared_from_this();
      if (tsfn_.NonBlockingCall([self](Napi::Env env, Napi::Function onPunt) { self->drain(env, onPunt); }) != napi_ok)
        scheduled_ = false;
    }
    return take;
  }

  // Called after the workers are joined: no offer() follows, so the calls already queued are the last.
  void release() { tsfn_.Release(); }

 private:
  // On the JS thread: every queued punt in one call, onPunt(bytes: Buffer, meta: Uint32Array).
  void drain(Napi::Env env, Napi::Function onPunt) {
    {
      std::lock_guard<std::mutex> hold(mu_);
      std::swap(filling_, draining_);
      scheduled_ = false;
    }
    if (draining_.empty()) return;
    Napi::Buffer<uint8_t> bytes = Napi::Buffer<uint8_t>::Copy(env, draining_.bytes.data(), draining_.bytes.size());
    Napi::Uint32Array meta = Napi::Uint32Array::New(env, draining_.size() * kPuntMetaWords);
    for (size_t i = 0; i < draining_.size(); i++) {
      const PuntMeta& p = draining_.meta[i];
      uint32_t* m = meta.Data() + i * kPuntMetaWords;
      m[0] = p.offset;
      m[1] = p.length;
      m[2] = p.reason;
      m[3] = uint32_t(p.from);
      m[4] = p.sa;
    }
    draining_.clear_and_trim(draining_.bytes.size());
    onPunt.Call({bytes, meta});
  }

  Napi::ThreadSafeFunction tsfn_;
  std::mutex mu_;
  PuntBatch filling_;  // under mu_
  PuntBatch draining_;  // the JS thread's
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
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction())
    throw Napi::TypeError::New(env, "new IoLoop(engine, onPunt)");
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

// start({ netns, tunName, mtu, addresses: Uint32Array (address, prefixLen) pairs, workers, offload, udpPort,
// pollMicros, workerNice, plainByKernel,
//         bindInterface, tunTable, deliverRoute, tunnelFrom, tunnelTo })
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
  cfg.plain_by_kernel = o.Get("plainByKernel").IsBoolean() && o.Get("plainByKernel").As<Napi::Boolean>().Value();
  if (o.Get("workerNice").IsNumber()) cfg.worker_nice = o.Get("workerNice").As<Napi::Number>().Int32Value();
  if (o.Get("bindInterface").IsString()) cfg.bind_device = o.Get("bindInterface").As<Napi::String>().Utf8Value();
  cfg.tun_table = u32_of(o, "tunTable", 0);
  cfg.deliver_route = o.Get("deliverRoute").IsBoolean() && o.Get("deliverRoute").As<Napi::Boolean>().Value();
  cfg.tunnel_from = u32_of(o, "tunnelFrom", 0);
  cfg.tunnel_to = u32_of(o, "tunnelTo", 0);
  const uint32_t tunnel_protocol = u32_of(o, "tunnelProtocol", 0);
  if (tunnel_protocol > 255) throw Napi::RangeError::New(env, "io config tunnelProtocol must be 0..255");
  cfg.tunnel_protocol = uint8_t(tunnel_protocol);
  Napi::Value addresses = o.Get("addresses");
  if (!addresses.IsUndefined()) {
    if (!addresses.IsTypedArray() || addresses.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
      throw Napi::TypeError::New(env, "io config addresses must be a Uint32Array of (address, prefix length) pairs");
    Napi::Uint32Array a = addresses.As<Napi::Uint32Array>();
    for (size_t i = 0; i + 1 < a.ElementLength(); i += 2)
      cfg.tun.addresses.push_back(TunAddress{a[i], uint8_t(std::min<uint32_t>(a[i + 1], 32))});
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
// a packet's quote (InjectMeta::quote_length bytes) follows it in bytes.
Napi::Value IoLoopWrap::Inject(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    throw Napi::TypeError::New(env, "inject(bytes: Uint8Array, meta: Uint32Array)");
  if (!loop_ || !loop_->running())
    throw Napi::Error::New(env, "the I/O loop is not running (start it first; a stopped loop cannot be restarted)");
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  Napi::Uint32Array meta = info[1].As<Napi::Uint32Array>();
  if (meta.ElementLength() % 4)
    throw Napi::RangeError::New(env, "inject meta must hold (offset, length, via, quoteLength) quadruples");
  // Checked in place, then copied straight from the JS memory into the workers' queues.
  const InjectMeta* packets = reinterpret_cast<const InjectMeta*>(meta.Data());
  const size_t n = meta.ElementLength() / 4;
  for (size_t i = 0; i < n; i++) {
    const size_t off = packets[i].offset, len = packets[i].length, quote = packets[i].quote_length;
    if (off > bytes.ElementLength() || len > bytes.ElementLength() - off || quote > bytes.ElementLength() - off - len)
      throw Napi::RangeError::New(env, "inject packet " + std::to_string(i) + " lies outside the bytes");
    if (packets[i].via > uint32_t(Via::raw)) throw Napi::RangeError::New(env, "inject via must be 0..3");
  }
  return Napi::Number::New(env, double(loop_->inject(bytes.Data(), packets, n)));
}

Napi::Value IoLoopWrap::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  for (int s = 0; s < S_COUNT; s++)
    o.Set(stat_names()[s], Napi::Number::New(env, loop_ ? double(loop_->stat(Stat(s))) : 0));
  o.Set("cpuMicros", Napi::Number::New(env, loop_ ? double(loop_->cpu_micros()) : 0));
  // Punts taken, by reason code (io.ts names them).
  Napi::Float64Array reasons = Napi::Float64Array::New(env, kPuntReasonSlots);
  for (size_t r = 0; r < kPuntReasonSlots; r++) reasons[r] = loop_ ? double(loop_->punt_reason(r)) : 0;
  o.Set("puntReasons", reasons);
  return o;
}

Napi::Value IoLoopWrap::Running(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), loop_ && loop_->running());
}

namespace {

Napi::Uint8Array bytes_arg(const Napi::CallbackInfo& info, size_t i, const char* usage) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(info.Env(), usage);
  return info[i].As<Napi::Uint8Array>();
}

// The packets a pure splitter (segment_tcp4, ipv4_fragment) writes through its out(length) callback, for the tests.
class PacketList {
 public:
  auto out() {
    return [this](size_t len) {
      packets_.emplace_back(len);
      return packets_.back().data();
    };
  }
  Napi::Array to_js(Napi::Env env) const {
    Napi::Array out = Napi::Array::New(env, packets_.size());
    for (size_t i = 0; i < packets_.size(); i++)
      out.Set(uint32_t(i), Napi::Buffer<uint8_t>::Copy(env, packets_[i].data(), packets_[i].size()));
    return out;
  }

 private:
  std::vector<std::vector<uint8_t>> packets_;
};

// splitTcp4(superPacket, gsoSize) → the segments the TUN read path feeds to OUTBOUND, or null when unparsable.
Napi::Value SplitTcp4(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "splitTcp4(packet: Uint8Array, gsoSize: number)";
  Napi::Uint8Array p = bytes_arg(info, 0, usage);
  if (info.Length() < 2 || !info[1].IsNumber()) throw Napi::TypeError::New(env, usage);
  virtio_net_hdr h{};
  h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  h.gso_size = uint16_t(info[1].As<Napi::Number>().Uint32Value());
  PacketList segments;
  if (segment_tcp4(h, p.Data(), p.ElementLength(), segments.out()) < 0) return env.Null();
  return segments.to_js(env);
}

// fragmentIpv4(datagram, mtu) → the fragments the I/O loop seals one by one when a sealed datagram without DF is too
// big for its link (the same ipv4_fragment), or null when it cannot be split.
Napi::Value FragmentIpv4(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "fragmentIpv4(datagram: Uint8Array, mtu: number)";
  Napi::Uint8Array p = bytes_arg(info, 0, usage);
  if (info.Length() < 2 || !info[1].IsNumber()) throw Napi::TypeError::New(env, usage);
  PacketList pieces;
  if (ipv4_fragment(p.Data(), p.ElementLength(), info[1].As<Napi::Number>().Uint32Value(), pieces.out()) < 0)
    return env.Null();
  return pieces.to_js(env);
}

// coalesceTcp4(datagrams) → { runs: number[] (datagrams per write), writes: Buffer[] (vnet header + packet, or the
// datagram alone) }: what the DELIVER path writes to an offloading TUN (the same coalesce_tcp4 the TUN port calls).
Napi::Value CoalesceTcp4(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "coalesceTcp4(datagrams: Uint8Array[])");
  Napi::Array in = info[0].As<Napi::Array>();
  std::vector<const uint8_t*> p;
  std::vector<size_t> len;
  for (uint32_t i = 0; i < in.Length(); i++) {
    Napi::Value v = in.Get(i);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Napi::TypeError::New(env, "coalesceTcp4: every datagram must be a Uint8Array");
    p.push_back(v.As<Napi::Uint8Array>().Data());
    len.push_back(v.As<Napi::Uint8Array>().ElementLength());
  }
  Napi::Array runs = Napi::Array::New(env), writes = Napi::Array::New(env);
  std::vector<uint8_t> scratch(kVnetHdrBytes + TcpCoalescer::kMaxSuper);
  coalesce_tcp4(p.data(), len.data(), p.size(), scratch.data(),
                [&](const uint8_t* bytes, size_t length, size_t datagrams) {
                  const uint32_t at = runs.Length();
                  runs.Set(at, Napi::Number::New(env, double(datagrams)));
                  writes.Set(at, Napi::Buffer<uint8_t>::Copy(env, bytes, length));
                });
  Napi::Object o = Napi::Object::New(env);
  o.Set("runs", runs);
  o.Set("writes", writes);
  return o;
}

// fragNeeded(quote: Uint8Array, mtu: number) → the ICMP 3/4 the loop sends for that datagram (wire/icmp.h), or null
// when it must not answer.
Napi::Value FragNeeded(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "fragNeeded(quote: Uint8Array, mtu: number)";
  Napi::Uint8Array q = bytes_arg(info, 0, usage);
  if (info.Length() < 2 || !info[1].IsNumber()) throw Napi::TypeError::New(env, usage);
  uint8_t out[kIcmpFragNeededMax];
  const size_t n = icmp_frag_needed(out, q.Data(), std::min(q.ElementLength(), kIcmpQuoteMax),
                                    uint16_t(info[1].As<Napi::Number>().Uint32Value()));
  return n ? Napi::Buffer<uint8_t>::Copy(env, out, n) : env.Null();
}

}  // namespace

Napi::Object OffloadExports(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("splitTcp4", Napi::Function::New<SplitTcp4>(env, "splitTcp4"));
  o.Set("fragmentIpv4", Napi::Function::New<FragmentIpv4>(env, "fragmentIpv4"));
  o.Set("coalesceTcp4", Napi::Function::New<CoalesceTcp4>(env, "coalesceTcp4"));
  o.Set("fragNeeded", Napi::Function::New<FragNeeded>(env, "fragNeeded"));
  return o;
}

}  // namespace mipsec::io
