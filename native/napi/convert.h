// The one conversion module between JS values and C++ for every binding file
// (this addon's and the bench's): argument readers with range checks and one
// error style, and the one converter from SysError to a JS error.
//
// Readers name the argument in every error. A value of the wrong type is a
// TypeError ("Expected mtu to be a number"); a number that is negative, too
// large or not an integer is a RangeError ("Expected mtu to be an integer
// from 68 to 9000, got -1"). Nothing wraps around: -1 is never 4294967295.
//
// Errors from C++ reach JS as an Error whose message is the C++ sentence,
// with `code` the errno's name ("ENOSPC") and `errno` its (positive) number.
#pragma once

#include <napi.h>

#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>

#include "common/errors.h"

namespace xsw::napi {

// ---------------------------------------------------------------------------
// Errors.

// The JS error for a SysError: message, code and errno.
Napi::Error SysErrorToJs(Napi::Env env, const SysError& e);

// Runs a control-path call and turns what C++ throws into that one error
// form: SysError as is, std::invalid_argument as EINVAL (its sentence kept),
// std::bad_alloc as ENOMEM.
template <typename F>
auto Guard(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const SysError& e) {
    throw SysErrorToJs(env, e);
  } catch (const std::invalid_argument& e) {
    throw SysErrorToJs(env, SysError(EINVAL, e.what()));
  } catch (const std::bad_alloc&) {
    throw SysErrorToJs(env, SysError(ENOMEM, "out of memory: ask for fewer buffers, pages or devices"));
  }
}

// ---------------------------------------------------------------------------
// Argument readers.

constexpr uint64_t kMaxSafeInteger = (uint64_t(1) << 53) - 1;  // Number.MAX_SAFE_INTEGER

// undefined or null.
bool IsAbsent(const Napi::Value& v);

// A number that is an integer in [min, max].
uint32_t ReadU32(const Napi::Value& v, const char* name, uint32_t min = 0, uint32_t max = UINT32_MAX);
int32_t ReadI32(const Napi::Value& v, const char* name, int32_t min, int32_t max);
// A number that is an integer in [min, max] (at most Number.MAX_SAFE_INTEGER).
uint64_t ReadUint(const Napi::Value& v, const char* name, uint64_t min = 0, uint64_t max = kMaxSafeInteger);
// A finite number.
double ReadNumber(const Napi::Value& v, const char* name);
// A bigint that fits in 64 unsigned bits.
uint64_t ReadBigU64(const Napi::Value& v, const char* name);
// A bigint that fits in 64 unsigned bits, or a non-negative safe-integer number.
uint64_t ReadU64(const Napi::Value& v, const char* name);
// A host address: a bigint (0 allowed; the callee decides what null means).
uint8_t* ReadAddress(const Napi::Value& v, const char* name);
std::string ReadString(const Napi::Value& v, const char* name);
Napi::Object ReadObject(const Napi::Value& v, const char* name);
Napi::Array ReadArray(const Napi::Value& v, const char* name);

// Members of an options object: `fallback` when the member is undefined,
// otherwise read like the readers above (the member's name in errors).
uint32_t OptU32(const Napi::Object& o, const char* key, uint32_t fallback, uint32_t min = 0,
                uint32_t max = UINT32_MAX);
std::string OptString(const Napi::Object& o, const char* key, const std::string& fallback);

// The elements of a typed array of one type (TypeError naming the argument otherwise).
template <typename T>
struct Span {
  T* data = nullptr;
  size_t len = 0;
};
// (Untyped helper of ReadTypedArray: the first byte and the element count.)
Span<uint8_t> ReadTypedArrayBytes(const Napi::Value& v, napi_typedarray_type type, const char* name,
                                  const char* type_name);
template <typename T>
Span<T> ReadTypedArray(const Napi::Value& v, napi_typedarray_type type, const char* name, const char* type_name) {
  Span<uint8_t> b = ReadTypedArrayBytes(v, type, name, type_name);
  return Span<T>{reinterpret_cast<T*>(b.data), b.len};
}

// A Buffer.
Napi::Buffer<uint8_t> ReadBuffer(const Napi::Value& v, const char* name);

}  // namespace xsw::napi
