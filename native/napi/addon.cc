// The addon's entry point: runs every file's registered init, each on the
// object of its group (addon.abi, addon.grant, addon.shm, ...).
#include <vector>

#include "napi/registry.h"

namespace xsw::napi {
namespace {
struct Entry {
  const char* group;
  InitFn fn;
};
std::vector<Entry>& Entries() {
  static std::vector<Entry> entries;
  return entries;
}
}  // namespace

Registrar::Registrar(const char* group, InitFn fn) { Entries().push_back({group, fn}); }

Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  for (const Entry& e : Entries()) {
    if (!exports.Has(e.group)) exports.Set(e.group, Napi::Object::New(env));
    e.fn(env, exports.Get(e.group).As<Napi::Object>());
  }
  return exports;
}

}  // namespace xsw::napi

static Napi::Object XswInit(Napi::Env env, Napi::Object exports) { return xsw::napi::InitAll(env, exports); }

NODE_API_MODULE(xsw, XswInit)
