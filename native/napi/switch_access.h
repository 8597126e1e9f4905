// The native switch behind a NativeSwitch object, for binding files other
// than switch_napi.cc (vhost_napi.cc attaches its ports to it).
#pragma once
#include <napi.h>

#include "switch/switch.h"

namespace xsw::napi {

extern const napi_type_tag kSwitchTypeTag;

// Throws a TypeError unless v is a NativeSwitch, an Error once it is closed.
xsw::Switch* SwitchOf(const Napi::Value& v, const char* name);

}  // namespace xsw::napi
