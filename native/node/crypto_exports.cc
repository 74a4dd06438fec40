// binding.crypto and binding.wire: the data path's own primitives, exposed so tests check exactly what packets use.
#include <cstring>
#include <vector>
#include <openssl/crypto.h>
#include "crypto/aead.h"
#include "crypto/evp.h"
#include "crypto/hmac.h"
#include "crypto/keywrap.h"
#include "crypto/packet_keys.h"
#include "node/engine.h"
#include "wire/icmp40.h"
#include "wire/ipv4.h"

namespace mipsec {

namespace {

Napi::Uint8Array bytes_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Uint8Array");
  return info[i].As<Napi::Uint8Array>();
}

void need_len(Napi::Env env, const Napi::Uint8Array& a, size_t want, const char* name) {
  if (a.ElementLength() != want)
    throw Napi::RangeError::New(env, std::string(name) + " must be " + std::to_string(want) + " bytes");
}

AeadSuite suite_arg(const Napi::CallbackInfo& info) {
  const std::string s = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (s == "aes128gcm") return AeadSuite::aes128gcm;
  if (s == "aes256gcm") return AeadSuite::aes256gcm;
  if (s == "chacha20poly1305") return AeadSuite::chacha20poly1305;
  throw Napi::TypeError::New(info.Env(), "suite must be 'aes128gcm', 'aes256gcm' or 'chacha20poly1305'");
}

// aeadSeal and aeadOpen take the same arguments; the fifth is the plaintext or the ciphertext ‖ tag.
struct AeadArgs {
  AeadSuite suite;
  Napi::Uint8Array key, nonce, aad, data;
};

AeadArgs aead_args(const Napi::CallbackInfo& info, const char* data_name) {
  AeadArgs a{suite_arg(info), bytes_arg(info, 1, "key"), bytes_arg(info, 2, "nonce"), bytes_arg(info, 3, "aad"),
             bytes_arg(info, 4, data_name)};
  need_len(info.Env(), a.key, aead_key_bytes(a.suite), "key");
  need_len(info.Env(), a.nonce, kNonceBytes, "nonce");
  return a;
}

Napi::Buffer<uint8_t> copy_out(Napi::Env env, const uint8_t* p, size_t n) {
  return Napi::Buffer<uint8_t>::Copy(env, p, n);
}

// aeadSeal(suite, key, nonce(12), aad, plaintext) → ciphertext ‖ tag(16)
Napi::Value AeadSeal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto [suite, key, nonce, aad, pt] = aead_args(info, "plaintext");
  std::vector<uint8_t> out(pt.ElementLength() + kTagBytes);
  std::memcpy(out.data(), pt.Data(), pt.ElementLength());
  Aead a;
  if (!a.init(suite, key.Data()) || !a.seal(nonce.Data(), aad.Data(), aad.ElementLength(), out.data(),
                                            pt.ElementLength(), out.data() + pt.ElementLength()))
    throw Napi::Error::New(env, "AEAD seal failed");
  return copy_out(env, out.data(), out.size());
}

// aeadOpen(suite, key, nonce(12), aad, ciphertext ‖ tag) → plaintext, or null when the tag fails
Napi::Value AeadOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto [suite, key, nonce, aad, ct] = aead_args(info, "ciphertext");
  if (ct.ElementLength() < kTagBytes) throw Napi::RangeError::New(env, "ciphertext must include the 16-byte tag");
  const size_t n = ct.ElementLength() - kTagBytes;
  std::vector<uint8_t> out(ct.Data(), ct.Data() + n);
  Aead a;
  if (!a.init(suite, key.Data())) throw Napi::Error::New(env, "AEAD init failed");
  if (!a.open(nonce.Data(), aad.Data(), aad.ElementLength(), out.data(), n, ct.Data() + n)) return env.Null();
  return copy_out(env, out.data(), n);
}

// gmac(key(16), nonce(12), data) → tag(16) (RFC 4543: GCM over AAD only)
Napi::Value Gmac(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto key = bytes_arg(info, 0, "key"), nonce = bytes_arg(info, 1, "nonce"), data = bytes_arg(info, 2, "data");
  need_len(env, key, 16, "key");
  need_len(env, nonce, kNonceBytes, "nonce");
  uint8_t tag[kTagBytes];
  AesGmac g;
  if (!g.init(key.Data()) || !g.begin(nonce.Data()) || !g.update(data.Data(), data.ElementLength()) || !g.finish(tag))
    throw Napi::Error::New(env, "GMAC failed");
  return copy_out(env, tag, sizeof tag);
}

// hmacSha256(key, data) → 32 bytes (AH uses the first 16, RFC 4868)
Napi::Value HmacSha256Fn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto key = bytes_arg(info, 0, "key"), data = bytes_arg(info, 1, "data");
  uint8_t out[kSha256Bytes];
  HmacSha256 h;
  if (!h.init(key.Data(), key.ElementLength()) || !h.begin() || !h.update(data.Data(), data.ElementLength()) ||
      !h.finish(out))
    throw Napi::Error::New(env, "HMAC failed");
  return copy_out(env, out, sizeof out);
}

// keyWrap(kek(32), key) → wrapped (RFC 3394, AES-256)
Napi::Value KeyWrap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto kek = bytes_arg(info, 0, "kek"), in = bytes_arg(info, 1, "key");
  need_len(env, kek, kKekBytes, "kek");
  if (in.ElementLength() < 16 || in.ElementLength() % 8)
    throw Napi::RangeError::New(env, "key must be a multiple of 8 bytes, at least 16");
  std::vector<uint8_t> out(in.ElementLength() + kKeyWrapOverhead);
  if (!key_wrap(kek.Data(), in.Data(), in.ElementLength(), out.data())) throw Napi::Error::New(env, "key wrap failed");
  return copy_out(env, out.data(), out.size());
}

// keyUnwrap(kek(32), wrapped) → key, or null when the integrity check fails
Napi::Value KeyUnwrap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto kek = bytes_arg(info, 0, "kek"), in = bytes_arg(info, 1, "wrapped");
  need_len(env, kek, kKekBytes, "kek");
  if (in.ElementLength() < 24 || in.ElementLength() % 8)
    throw Napi::RangeError::New(env, "wrapped must be a multiple of 8 bytes, at least 24");
  std::vector<uint8_t> out(in.ElementLength() - kKeyWrapOverhead);
  const bool ok = key_unwrap(kek.Data(), in.Data(), in.ElementLength(), out.data());
  Napi::Value result = ok ? Napi::Value(copy_out(env, out.data(), out.size())) : env.Null();
  OPENSSL_cleanse(out.data(), out.size());
  return result;
}

uint32_t uint_arg(const Napi::CallbackInfo& info, size_t i, const char* name, uint32_t max) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= max) || v != double(uint32_t(v)))
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be an integer 0.." + std::to_string(max));
  return uint32_t(v);
}

// skipPacketKeys(kijn(32), wrapped(40), cryptAlg, cryptLength, macAlg, macLength) → Kp ‖ E_kp ‖ A_kp, or null when the
// wrapped Kp fails its integrity check (a length of 0 leaves that key out)
Napi::Value SkipPacketKeys(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto kijn = bytes_arg(info, 0, "kijn"), wrapped = bytes_arg(info, 1, "wrapped");
  need_len(env, kijn, kKekBytes, "kijn");
  need_len(env, wrapped, kWrappedPacketKeyBytes, "wrapped");
  const uint32_t crypt_alg = uint_arg(info, 2, "cryptAlg", 255),
                 crypt_len = uint_arg(info, 3, "cryptLength", kTrafficKeyMaxBytes);
  const uint32_t mac_alg = uint_arg(info, 4, "macAlg", 255),
                 mac_len = uint_arg(info, 5, "macLength", kTrafficKeyMaxBytes);
  uint8_t out[kPacketKeyBytes + 2 * kTrafficKeyMaxBytes];
  const size_t total = kPacketKeyBytes + crypt_len + mac_len;
  const bool ok =
      skip_packet_keys(kijn.Data(), wrapped.Data(), uint8_t(crypt_alg), crypt_len, uint8_t(mac_alg), mac_len, out);
  Napi::Value result = ok ? Napi::Value(copy_out(env, out, total)) : env.Null();
  OPENSSL_cleanse(out, total);
  return result;
}

// sha256(data) → 32 bytes, with the digest fetched once (node:crypto's hash() looks it up on every call)
Napi::Value Sha256(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto data = bytes_arg(info, 0, "data");
  uint8_t out[kSha256Bytes];
  unsigned int len = 0;
  if (!algorithms().sha256 ||
      EVP_Digest(data.Data(), data.ElementLength(), out, &len, algorithms().sha256, nullptr) != 1 || len != sizeof out)
    throw Napi::Error::New(env, "SHA-256 failed");
  return copy_out(env, out, sizeof out);
}

// ipChecksum(data) → the Internet checksum (RFC 1071)
Napi::Value IpChecksum(const Napi::CallbackInfo& info) {
  auto data = bytes_arg(info, 0, "data");
  return Napi::Number::New(info.Env(), internet_checksum(data.Data(), data.ElementLength()));
}

// ipChecksumUpdate(checksum, oldWord, newWord) → checksum after one 16-bit word changed (RFC 1624)
Napi::Value IpChecksumUpdate(const Napi::CallbackInfo& info) {
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber())
    throw Napi::TypeError::New(info.Env(), "ipChecksumUpdate(checksum, oldWord, newWord)");
  auto word = [&](size_t i) { return uint16_t(info[i].As<Napi::Number>().Uint32Value()); };
  return Napi::Number::New(info.Env(), checksum_update(word(0), word(1), word(2)));
}

// parseIcmp40(message) → { status, code?, pointer?, spi? } (the native parser, for cross-checks with src/wire)
Napi::Value ParseIcmp40(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto msg = bytes_arg(info, 0, "message");
  Icmp40View v;
  const Icmp40Status status = icmp40_parse(msg.Data(), msg.ElementLength(), &v);
  Napi::Object o = Napi::Object::New(env);
  o.Set("status", icmp40_status_name(status));
  if (status != Icmp40Status::ok) return o;
  o.Set("code", v.code);
  o.Set("pointer", v.pointer);
  if (v.has_spi) o.Set("spi", Napi::Number::New(env, v.spi));
  return o;
}

}  // namespace

Napi::Object WireExports(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("parseIcmp40", Napi::Function::New<ParseIcmp40>(env, "parseIcmp40"));
  return o;
}

Napi::Object CryptoExports(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("aeadSeal", Napi::Function::New<AeadSeal>(env, "aeadSeal"));
  o.Set("aeadOpen", Napi::Function::New<AeadOpen>(env, "aeadOpen"));
  o.Set("gmac", Napi::Function::New<Gmac>(env, "gmac"));
  o.Set("hmacSha256", Napi::Function::New<HmacSha256Fn>(env, "hmacSha256"));
  o.Set("sha256", Napi::Function::New<Sha256>(env, "sha256"));
  o.Set("keyWrap", Napi::Function::New<KeyWrap>(env, "keyWrap"));
  o.Set("keyUnwrap", Napi::Function::New<KeyUnwrap>(env, "keyUnwrap"));
  o.Set("skipPacketKeys", Napi::Function::New<SkipPacketKeys>(env, "skipPacketKeys"));
  o.Set("ipChecksum", Napi::Function::New<IpChecksum>(env, "ipChecksum"));
  o.Set("ipChecksumUpdate", Napi::Function::New<IpChecksumUpdate>(env, "ipChecksumUpdate"));
  return o;
}

}  // namespace mipsec
