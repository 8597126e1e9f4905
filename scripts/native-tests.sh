#!/usr/bin/env bash
# Builds the C++ unit tests (native/test/, bench/native/test/) with
# AddressSanitizer and UndefinedBehaviorSanitizer and runs them with ctest:
# hostile-input paths must be reported, never crash or read out of bounds.
# ctest also runs the layering checks (native/test/CMakeLists.txt): the switch
# and the guest's PMD cannot include each other's headers.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-asan
cmake -S . -B "$build" -DXSW_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j "$(nproc)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allow_user_segv_handler=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir "$build" --output-on-failure
