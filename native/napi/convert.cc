#include "napi/convert.h"

#include <cmath>
#include <cstdio>

namespace xsw::napi {

namespace {

std::string Shown(const Napi::Value& v) {
  // What the caller passed, for the end of a RangeError ("got -1").
  return v.ToString().Utf8Value();
}

[[noreturn]] void WrongType(const Napi::Value& v, const char* name, const char* what) {
  throw Napi::TypeError::New(v.Env(), std::string("Expected ") + name + " to be " + what);
}

// An integer in [min, max] (both within the safe-integer range) read from a number.
double IntegerIn(const Napi::Value& v, const char* name, double min, double max) {
  if (!v.IsNumber()) WrongType(v, name, "a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= min && d <= max) || d != std::floor(d)) {
    char range[96];
    std::snprintf(range, sizeof range, "an integer from %.0f to %.0f, got ", min, max);
    throw Napi::RangeError::New(v.Env(), std::string("Expected ") + name + " to be " + range + Shown(v));
  }
  return d;
}

}  // namespace

Napi::Error SysErrorToJs(Napi::Env env, const SysError& e) {
  Napi::Error err = Napi::Error::New(env, e.what());
  err.Set("code", Napi::String::New(env, ErrnoName(e.err())));
  err.Set("errno", Napi::Number::New(env, e.err()));
  return err;
}

bool IsAbsent(const Napi::Value& v) { return v.IsUndefined() || v.IsNull(); }

uint32_t ReadU32(const Napi::Value& v, const char* name, uint32_t min, uint32_t max) {
  return uint32_t(IntegerIn(v, name, min, max));
}

int32_t ReadI32(const Napi::Value& v, const char* name, int32_t min, int32_t max) {
  return int32_t(IntegerIn(v, name, min, max));
}

uint64_t ReadUint(const Napi::Value& v, const char* name, uint64_t min, uint64_t max) {
  if (max > kMaxSafeInteger) max = kMaxSafeInteger;
  return uint64_t(IntegerIn(v, name, double(min), double(max)));
}

double ReadNumber(const Napi::Value& v, const char* name) {
  if (!v.IsNumber()) WrongType(v, name, "a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) throw Napi::RangeError::New(v.Env(), std::string("Expected ") + name + " to be a finite number, got " + Shown(v));
  return d;
}

uint64_t ReadBigU64(const Napi::Value& v, const char* name) {
  if (!v.IsBigInt()) WrongType(v, name, "a bigint");
  bool lossless = false;
  const uint64_t r = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) {
    throw Napi::RangeError::New(v.Env(), std::string("Expected ") + name + " to fit in 64 unsigned bits, got " + Shown(v));
  }
  return r;
}

uint64_t ReadU64(const Napi::Value& v, const char* name) {
  if (v.IsBigInt()) return ReadBigU64(v, name);
  if (!v.IsNumber()) WrongType(v, name, "a bigint or a number");
  return ReadUint(v, name);
}

uint8_t* ReadAddress(const Napi::Value& v, const char* name) {
  return reinterpret_cast<uint8_t*>(uintptr_t(ReadBigU64(v, name)));
}

std::string ReadString(const Napi::Value& v, const char* name) {
  if (!v.IsString()) WrongType(v, name, "a string");
  return v.As<Napi::String>().Utf8Value();
}

Napi::Object ReadObject(const Napi::Value& v, const char* name) {
  if (!v.IsObject()) WrongType(v, name, "an object");
  return v.As<Napi::Object>();
}

Napi::Array ReadArray(const Napi::Value& v, const char* name) {
  if (!v.IsArray()) WrongType(v, name, "an array");
  return v.As<Napi::Array>();
}

uint32_t OptU32(const Napi::Object& o, const char* key, uint32_t fallback, uint32_t min, uint32_t max) {
  Napi::Value v = o.Get(key);
  return v.IsUndefined() ? fallback : ReadU32(v, key, min, max);
}

std::string OptString(const Napi::Object& o, const char* key, const std::string& fallback) {
  Napi::Value v = o.Get(key);
  return v.IsUndefined() ? fallback : ReadString(v, key);
}

Span<uint8_t> ReadTypedArrayBytes(const Napi::Value& v, napi_typedarray_type type, const char* name,
                                  const char* type_name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) {
    WrongType(v, name, (std::string("a ") + type_name).c_str());
  }
  auto ta = v.As<Napi::TypedArray>();
  auto* base = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  return Span<uint8_t>{base, ta.ElementLength()};
}

Napi::Buffer<uint8_t> ReadBuffer(const Napi::Value& v, const char* name) {
  if (!v.IsBuffer()) WrongType(v, name, "a Buffer");
  return v.As<Napi::Buffer<uint8_t>>();
}

}  // namespace xsw::napi
