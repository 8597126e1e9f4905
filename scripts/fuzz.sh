#!/usr/bin/env bash
# The fuzz targets: the libFuzzer ones of native/fuzz, built with clang
# (-fsanitize=fuzzer,address,undefined) in build-fuzz/ and run from their
# checked-in seed corpora (native/fuzz/corpus/TARGET), and xenstore_wire, the
# XenStore wire parser's generated-stream fuzz in TypeScript
# (test/fuzz/xenstore-wire.ts; run npm run build:ts first).
#
#   scripts/fuzz.sh --ci [TARGET...]   each target for 15 s (npm test: npm run test:fuzz);
#                                      new inputs go to a temporary directory
#   scripts/fuzz.sh [--time S] [--jobs N] [TARGET...]
#                                      each target for S seconds (default 600) in N
#                                      processes (default 1; libFuzzer's -fork), keeping
#                                      new inputs in build-fuzz/corpus/TARGET (npm run fuzz)
#
# A crash, a failed check or a hang stops the run with a non-zero exit, and
# libFuzzer saves the input in build-fuzz/crashes/TARGET/. Once the bug is
# fixed, add that file to the target's seed corpus so every run replays it.
# XSW_FUZZ_CXX / XSW_FUZZ_CC choose the compiler (default clang++-16 / clang-16).
set -euo pipefail
cd "$(dirname "$0")/.."

all=(vring_device_fuzz gref_list_fuzz switch_fuzz netif_engine_fuzz xenstore_wire)
ci=0
seconds=600
jobs=1
targets=()
while (($#)); do
  case $1 in
    --ci) ci=1; seconds=15 ;;
    --time) seconds=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    -*) echo "fuzz: unknown option $1: use --ci, --time S, --jobs N or target names" >&2; exit 2 ;;
    *)
      if [[ " ${all[*]} " != *" $1 "* ]]; then
        echo "fuzz: no target $1: the targets are ${all[*]}" >&2
        exit 2
      fi
      targets+=("$1") ;;
  esac
  shift
done
((${#targets[@]})) || targets=("${all[@]}")
native=()
for t in "${targets[@]}"; do [[ $t == xenstore_wire ]] || native+=("$t"); done
if [[ " ${targets[*]} " == *" xenstore_wire "* && ! -f dist/test/fuzz/xenstore-wire.js ]]; then
  echo "fuzz: dist/test/fuzz/xenstore-wire.js is missing: run npm run build:ts first" >&2
  exit 1
fi

cxx=${XSW_FUZZ_CXX:-clang++-16}
cc=${XSW_FUZZ_CC:-clang-16}
if ((${#native[@]})) && ! command -v "$cxx" >/dev/null; then
  echo "fuzz: $cxx is not installed: apt-get install clang-16 libclang-rt-16-dev (or set XSW_FUZZ_CXX)" >&2
  exit 1
fi

build=build-fuzz
if ((${#native[@]})); then
  cmake -S . -B "$build" -DXSW_FUZZ=ON -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
  cmake --build "$build" -j "$(nproc)" --target "${native[@]}"
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for t in "${targets[@]}"; do
  if [[ $t == xenstore_wire ]]; then
    echo "fuzz: $t for ${seconds} s" >&2
    node dist/test/fuzz/xenstore-wire.js --time "$seconds"
    continue
  fi
  seeds=native/fuzz/corpus/$t
  mkdir -p "$build/crashes/$t"
  if ((ci)); then
    work=$(mktemp -d)
    trap 'rm -rf "$work" "$work.log"' EXIT
  else
    work=$build/corpus/$t
    mkdir -p "$work"
  fi
  opts=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$build/crashes/$t/")
  ((jobs > 1)) && opts+=(-fork="$jobs")
  echo "fuzz: $t for ${seconds} s from $seeds" >&2
  if ((ci)); then
    # Quiet when it passes (one line), the whole report's end when it fails.
    if ! "$build/native/fuzz/$t" "${opts[@]}" "$work" "$seeds" >"$work.log" 2>&1; then
      tail -n 80 "$work.log" >&2
      echo "fuzz: $t failed; the input is in $build/crashes/$t/" >&2
      exit 1
    fi
    grep -E '^Done [0-9]+ runs' "$work.log" >&2 || true
    rm -rf "$work" "$work.log"
    trap - EXIT
  else
    "$build/native/fuzz/$t" "${opts[@]}" "$work" "$seeds"
  fi
done
