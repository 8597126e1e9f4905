// Numbers as the control plane's sentences print them: 0x followed by hex.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace xsw {

inline std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace xsw
