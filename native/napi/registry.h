// Each N-API source file registers its exports with XSW_NAPI_EXPORTS(group,
// fn), so adding a file never touches addon.cc. Exports are grouped by
// concern: fn fills the object addon.<group> (several files may fill one
// group). The groups and their members are typed in native/addon.ts.
#pragma once
#include <napi.h>

namespace xsw::napi {

using InitFn = void (*)(Napi::Env env, Napi::Object group);

struct Registrar {
  Registrar(const char* group, InitFn fn);
};

}  // namespace xsw::napi

#define XSW_NAPI_EXPORTS(group, fn) static ::xsw::napi::Registrar xsw_registrar_##group(#group, fn)
