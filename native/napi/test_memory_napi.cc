// addon.testing: memory for tests and tools, never used by the data planes.
//
//   mapSharedFile  two processes mapping the same /dev/shm file see the same
//                  bytes, which is how the vring tests put a producer and a
//                  consumer in different processes without Xen
//   bufferAddress  where a Buffer's first byte lives
//   allocPages / unmapPages  page-aligned anonymous shared mappings, as a
//                  guest's granted pages would be, for the switch's fake guests
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "abi/abi.h"
#include "common/errors.h"
#include "napi/convert.h"
#include "napi/registry.h"

namespace {

using xsw::SysError;
using xsw::napi::SysErrorToJs;

SysError Failed(int err, const std::string& what) { return SysError(err, what + " (" + std::strerror(err) + ")"); }

// mapSharedFile(path: string, bytes: number) -> { buffer: Buffer, addr: bigint }
// Opens (creating if needed, mode 0600) and grows the file to `bytes`, then maps
// it shared and read-write. The mapping lives as long as the Buffer.
Napi::Value MapSharedFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = xsw::napi::ReadString(info[0], "path");
  const size_t bytes = size_t(xsw::napi::ReadUint(info[1], "bytes", 1, uint64_t(1) << 40));
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw SysErrorToJs(env, Failed(errno, "cannot open shared file " + path));
  struct stat st;
  if (fstat(fd, &st) != 0 || (size_t(st.st_size) < bytes && ftruncate(fd, off_t(bytes)) != 0)) {
    int err = errno;
    close(fd);
    throw SysErrorToJs(env, Failed(err, "cannot size shared file " + path + " to " + std::to_string(bytes) + " bytes"));
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd);
  if (p == MAP_FAILED) throw SysErrorToJs(env, Failed(err, "cannot map shared file " + path));
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

// allocPages(pages) -> { buffer: ArrayBuffer, addr: bigint }. unmapPages
// detaches the buffer first, so JS cannot touch the bytes afterwards.
Napi::Value AllocPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint32_t pages = xsw::napi::ReadU32(info[0], "pages", 1, 1u << 18);
  size_t bytes = size_t(pages) * xsw::kPageSize;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw SysErrorToJs(env, Failed(errno, "cannot map " + std::to_string(pages) + " test pages"));
  Napi::Object out = Napi::Object::New(env);
  out.Set("buffer", Napi::ArrayBuffer::New(env, p, bytes));  // no finalizer: unmapPages or process exit frees it
  out.Set("addr", Napi::BigInt::New(env, uint64_t(uintptr_t(p))));
  return out;
}

Napi::Value UnmapPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArrayBuffer()) throw Napi::TypeError::New(env, "Expected buffer to be an ArrayBuffer from allocPages");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  void* p = ab.Data();
  size_t bytes = ab.ByteLength();
  if (p == nullptr || bytes == 0) throw Napi::Error::New(env, "these pages are already unmapped");
  ab.Detach();
  munmap(p, bytes);
  return env.Undefined();
}

void InitTesting(Napi::Env env, Napi::Object group) {
  group.Set("mapSharedFile", Napi::Function::New(env, MapSharedFile, "mapSharedFile"));
  group.Set("bufferAddress", Napi::Function::New(env, BufferAddress, "bufferAddress"));
  group.Set("allocPages", Napi::Function::New(env, AllocPages, "allocPages"));
  group.Set("unmapPages", Napi::Function::New(env, UnmapPages, "unmapPages"));
}

}  // namespace

XSW_NAPI_EXPORTS(testing, InitTesting);
