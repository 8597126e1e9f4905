// Shared-file mappings for tests and tools: two processes mapping the same
// /dev/shm file see the same bytes, which is how the vring tests put a
// producer and a consumer in different processes without Xen.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "napi/registry.h"

namespace {

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message + " (" + std::strerror(err) + ")");
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

// mapSharedFile(path: string, bytes: number) -> { buffer: Buffer, addr: bigint }
// Opens (creating if needed, mode 0600) and grows the file to `bytes`, then maps
// it shared and read-write. The mapping lives as long as the Buffer.
Napi::Value MapSharedFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "Expected path to be a string");
  if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "Expected bytes to be a number");
  std::string path = info[0].As<Napi::String>();
  double bytes_d = info[1].As<Napi::Number>().DoubleValue();
  if (!(bytes_d > 0) || bytes_d > double(1ull << 40) || bytes_d != double(uint64_t(bytes_d))) {
    throw Napi::RangeError::New(env, "bytes must be a positive whole number below 1 TiB");
  }
  size_t bytes = size_t(bytes_d);
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw ErrnoError(env, errno, "cannot open shared file " + path);
  struct stat st;
  if (fstat(fd, &st) != 0 || (size_t(st.st_size) < bytes && ftruncate(fd, off_t(bytes)) != 0)) {
    int err = errno;
    close(fd);
    throw ErrnoError(env, err, "cannot size shared file " + path + " to " + std::to_string(bytes) + " bytes");
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd);
  if (p == MAP_FAILED) throw ErrnoError(env, err, "cannot map shared file " + path);
  auto buffer = Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t*>(p), bytes,
                                           [bytes](Napi::Env, uint8_t* data) { munmap(data, bytes); });
  Napi::Object out = Napi::Object::New(env);
  out.Set("buffer", buffer);
  out.Set("addr", Napi::BigInt::New(env, uint64_t(reinterpret_cast<uintptr_t>(p))));
  return out;
}

// bufferAddress(view: ArrayBufferView) -> bigint: where its first byte lives.
Napi::Value BufferAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "Expected view to be a Buffer or typed array");
  Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  auto* base = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  return Napi::BigInt::New(env, uint64_t(reinterpret_cast<uintptr_t>(base)));
}

void InitShm(Napi::Env env, Napi::Object exports) {
  exports.Set("mapSharedFile", Napi::Function::New(env, MapSharedFile, "mapSharedFile"));
  exports.Set("bufferAddress", Napi::Function::New(env, BufferAddress, "bufferAddress"));
}

}  // namespace

XSW_NAPI_EXPORTS(shm, InitShm);
