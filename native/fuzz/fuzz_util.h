// What the fuzz targets share: a check that aborts (libFuzzer then saves the
// input as a crash) and memory whose every byte past its end is an ASan redzone.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#define FUZZ_CHECK(cond)                                                             \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

namespace xsw::fuzz {

// Exactly `bytes` bytes on the heap, 4096-aligned and zeroed: a read or write
// one byte past the end is an ASan report, not a quiet touch of padding.
struct ExactMem {
  explicit ExactMem(uint64_t bytes) : size(bytes) {
    void* m = nullptr;
    if (posix_memalign(&m, 4096, bytes == 0 ? 1 : bytes) != 0) std::abort();
    p = static_cast<uint8_t*>(m);
    std::memset(p, 0, bytes);
  }
  ~ExactMem() { std::free(p); }
  ExactMem(const ExactMem&) = delete;
  ExactMem& operator=(const ExactMem&) = delete;
  uint64_t size;
  uint8_t* p;
};

}  // namespace xsw::fuzz
