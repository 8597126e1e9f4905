// The addon's entry point: runs every module's registered init.
#include <vector>

#include "napi/registry.h"

namespace xsw::napi {
namespace {
struct Entry {
  const char* name;
  InitFn fn;
};
std::vector<Entry>& Entries() {
  static std::vector<Entry> entries;
  return entries;
}
}  // namespace

Registrar::Registrar(const char* name, InitFn fn) { Entries().push_back({name, fn}); }

Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  for (const Entry& e : Entries()) e.fn(env, exports);
  return exports;
}

}  // namespace xsw::napi

static Napi::Object XswInit(Napi::Env env, Napi::Object exports) { return xsw::napi::InitAll(env, exports); }

NODE_API_MODULE(xsw, XswInit)
