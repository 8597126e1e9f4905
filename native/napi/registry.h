// Each N-API source file registers its own exports with XSW_NAPI_EXPORTS, so
// adding a module never touches addon.cc.
#pragma once
#include <napi.h>

namespace xsw::napi {

using InitFn = void (*)(Napi::Env env, Napi::Object exports);

struct Registrar {
  Registrar(const char* name, InitFn fn);
};

}  // namespace xsw::napi

#define XSW_NAPI_EXPORTS(name, fn) static ::xsw::napi::Registrar xsw_registrar_##name(#name, fn)
