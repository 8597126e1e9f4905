// The C++ tests' checks: each failed CHECK prints where and what, and counts;
// main() returns Finish(name) so ctest sees the verdict.
#pragma once

#include <cstdio>

namespace xsw::test {

inline int failures = 0;

inline int Finish(const char* name) {
  std::printf("%s: %s (%d failures)\n", name, failures ? "FAIL" : "ok", failures);
  return failures ? 1 : 0;
}

}  // namespace xsw::test

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++::xsw::test::failures;                                                      \
    }                                                                               \
  } while (0)

#define CHECK_EQ(a, b)                                                                               \
  do {                                                                                               \
    auto a_ = (a);                                                                                   \
    auto b_ = (b);                                                                                   \
    if (!(a_ == b_)) {                                                                               \
      std::fprintf(stderr, "%s:%d: CHECK_EQ failed: %s = %llu, %s = %llu\n", __FILE__, __LINE__, #a, \
                   (unsigned long long)a_, #b, (unsigned long long)b_);                              \
      ++::xsw::test::failures;                                                                       \
    }                                                                                                \
  } while (0)
