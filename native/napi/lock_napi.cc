// addon.lock: the one-per-host lock (native/common/file_lock.h).
#include "common/file_lock.h"
#include "napi/convert.h"
#include "napi/registry.h"

namespace {

using namespace xsw::napi;

// lockFileExclusive(path) -> the fd holding the lock, or -1 when another process holds it.
Napi::Value LockFileExclusive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ReadString(info[0], "path");
  return Napi::Number::New(env, Guard(env, [&] { return xsw::LockFileExclusive(path); }));
}

void Init(Napi::Env env, Napi::Object group) {
  group.Set("lockFileExclusive", Napi::Function::New(env, LockFileExclusive));
}

}  // namespace

XSW_NAPI_EXPORTS(lock, Init);
