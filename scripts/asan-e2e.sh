#!/usr/bin/env bash
# The hostile-guest tests again, end to end, with the addon built under
# AddressSanitizer and UndefinedBehaviorSanitizer: the back end, the switch and
# every process the tests start load this addon (XSW_ADDON is inherited), so a
# hostile ring or XenStore value that made native code read or write out of
# bounds aborts the test instead of passing by luck.
set -euo pipefail
cd "$(dirname "$0")/.."
npx cmake-js compile --out build-asan-addon --debug --CDXSW_SANITIZE=ON >/dev/null
export LD_PRELOAD="$(g++ -print-file-name=libasan.so):$(g++ -print-file-name=libubsan.so)"
export XSW_ADDON="$PWD/build-asan-addon/Debug/xsw.node"
# Node itself does not free everything at exit: leak reports would be its own.
# allow_user_segv_handler=1 (libasan's default, made explicit): the vhost-user
# SIGBUS guard (native/vhost/sigbus_guard.h) installs its handler over ASan's
# and hands ASan every fault that is not in a guarded region.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allow_user_segv_handler=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
npx ava dist/test/backend-hostile.test.js dist/test/switch-dataplane.test.js dist/test/vring-hostile.test.js \
  dist/test/netif-hostile.test.js dist/test/netif-e2e.test.js dist/test/vhost-hostile.test.js
