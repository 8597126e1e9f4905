#!/bin/bash
# npm run test:xen — the real-Xen integration test (docs/xen.md).
#
# Builds or reuses the cached images (test/xen/build-images.sh), packs the
# built project (dist/, build/Release/xsw.node, the runtime node_modules),
# boots Xen 4.17 + a PV dom0 under QEMU (software emulation), lets dom0's
# /init run test/xen/scenarios.sh (which creates the guests with xl), reads
# the results from the shared directory and always stops QEMU.
#
# Usage: run.sh [--load]   (npm run test:xen -- --load)
#   --load   the load check: `stress-ng --cpu <CPUs>` runs alongside, stopped after
#
# Environment: XSW_XEN_CACHE (default /var/tmp/xsw-xen), XSW_XEN_TIMEOUT (the
# cap on boot + scenarios, default 1800 s; each wait inside is calibrated, see
# test/xen/timing.sh), XSW_XEN_STRESS (N: run `stress-ng --cpu N` alongside;
# --load sets it to the number of CPUs), XSW_XEN_PROJECT_DIST (default dist/), XSW_ADDON (default
# build/Release/xsw.node), XSW_XEN_CPU (QEMU -cpu); for debugging:
# XSW_XEN_SCENARIOS (another scenario script for dom0), XSW_XEN_EXTRA (a
# directory copied to /opt/xsw/extra in dom0 and the guests).
set -uo pipefail
export PATH=$PATH:/usr/sbin:/sbin
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${XSW_XEN_CACHE:-/var/tmp/xsw-xen}
TIMEOUT=${XSW_XEN_TIMEOUT:-1800}
STRESS=${XSW_XEN_STRESS:-}
DIST=${XSW_XEN_PROJECT_DIST:-$ROOT/dist}
ADDON=${XSW_ADDON:-$ROOT/build/Release/xsw.node}
T0=$(date +%s)
say() { echo "[xen $(( $(date +%s) - T0 ))s] $*"; }
die() { echo "xen: $*" >&2; echo "xen: 0 passed, 1 failed (prerequisite)"; exit 1; }
for arg in "$@"; do
  case "$arg" in
    --load) STRESS=$(nproc) ;;
    *) die "unknown argument '$arg': the only one is --load (npm run test:xen -- --load)" ;;
  esac
done

# ---- prerequisites: one sentence each
[ -z "$STRESS" ] || [[ $STRESS =~ ^[1-9][0-9]*$ ]] || die "XSW_XEN_STRESS=$STRESS is not a number of CPUs to load: unset it or give a number such as 2"
[ -z "$STRESS" ] || command -v stress-ng >/dev/null || die "the load check runs stress-ng, which is not installed: install it (apt-get install stress-ng) or run without --load"
[[ $TIMEOUT =~ ^[0-9]+$ ]] && [ "$TIMEOUT" -ge 120 ] || die "XSW_XEN_TIMEOUT=$TIMEOUT is not a number of seconds of at least 120: unset it (default 1800) or raise it"
[ "$(id -u)" = 0 ] || die "test:xen needs root (debootstrap, chroot, /dev/kvm is not used): run it as root"
command -v node >/dev/null || die "node is not on PATH: install Node 20 (it is copied into the guests)"
[ -e "$DIST/backend/cli.js" ] && [ -e "$DIST/frontend/cli.js" ] || die "the project is not built ($DIST/backend/cli.js is missing): run 'npm install' (or 'npm run build') first"
[ -e "$ADDON" ] || die "the native addon $ADDON is missing: run 'npm install' (or 'npm run build') first"
need=()
for p in qemu-system-x86:qemu-system-x86_64 debootstrap:debootstrap cpio:cpio kmod:depmod python3:python3; do
  command -v "${p#*:}" >/dev/null || need+=("${p%%:*}")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing host packages: ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || die "cannot install ${need[*]} with apt-get: install them (apt-get install ${need[*]}) and rerun"
fi
mkdir -p "$CACHE" || die "cannot create the cache directory $CACHE: set XSW_XEN_CACHE to a writable place"
free_kb=$(df -Pk "$CACHE" | awk 'NR==2{print $4}')
[ "$free_kb" -ge $((3 * 1024 * 1024)) ] || die "test:xen needs about 3 GB free under $CACHE but only $((free_kb / 1024)) MB are: free some space or set XSW_XEN_CACHE to a bigger disk"

# ---- images (cached)
bash "$HERE/build-images.sh" || die "building the Xen images failed (see above)"
IMG=$(cat "$CACHE/current")

# ---- this run: the shared directory (9p tag "xsw", /mnt/xsw in dom0)
RUN=$CACHE/run
SHARE=$RUN/share
QEMU_PID=
STRESS_PID=
cleanup() {
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
    kill "$QEMU_PID" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$QEMU_PID" 2>/dev/null
  fi
  if [ -n "$STRESS_PID" ]; then kill "$STRESS_PID" 2>/dev/null; wait "$STRESS_PID" 2>/dev/null; STRESS_PID=; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$RUN"
mkdir -p "$SHARE/out" "$RUN/stage/opt/xsw/build/Release" "$RUN/stage/opt/xsw/dist"

# The project as installed: compiled JS (not the tests), the addon, and the
# closure of package.json's dependencies (not cmake-js and node-addon-api,
# which only build the addon).
# dist/'s runtime folders (not test/, bench/, scripts/): add new ones to this list.
RUNTIME_DIRS=(backend ctl frontend native schema xenstore)
for d in "${RUNTIME_DIRS[@]}"; do
  [ -d "$DIST/$d" ] && cp -a "$DIST/$d" "$RUN/stage/opt/xsw/dist/"
done
cp "$ADDON" "$RUN/stage/opt/xsw/build/Release/xsw.node"
[ -n "${XSW_XEN_EXTRA:-}" ] && cp -a "$XSW_XEN_EXTRA" "$RUN/stage/opt/xsw/extra"
cp "$ROOT/package.json" "$RUN/stage/opt/xsw/"
RUNTIME_DEPS=$(node -e 'const d = require(process.argv[1]).dependencies ?? {}; console.log(Object.keys(d).filter((n) => n !== "cmake-js" && n !== "node-addon-api").join(" "))' "$ROOT/package.json")
# shellcheck disable=SC2086 # one word per package
node - "$ROOT" "$RUN/stage/opt/xsw" $RUNTIME_DEPS <<'EOF' || die "cannot collect the runtime node_modules: run 'npm install' first"
const fs = require('fs'), path = require('path');
const [root, dest, ...names] = process.argv.slice(2);
const seen = new Set();
function find(name, from) {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const p = path.join(dir, 'node_modules', name);
    if (fs.existsSync(path.join(p, 'package.json'))) return p;
    if (dir === root || dir === path.dirname(dir)) throw new Error(`${name} not found from ${from}`);
  }
}
function add(name, from) {
  const dir = find(name, from);
  if (seen.has(dir)) return;
  seen.add(dir);
  fs.cpSync(dir, path.join(dest, path.relative(root, dir)), { recursive: true });
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  for (const dep of Object.keys(pkg.dependencies ?? {})) add(dep, dir);
}
for (const n of names) add(n, root);
EOF
tar -C "$RUN/stage/opt/xsw" -cf "$SHARE/project.tar" .
# The guests' ramdisk: the cached root (hard links) plus the project, one archive.
cp -al "$IMG/domu" "$RUN/domu"
cp -a "$RUN/stage/opt" "$RUN/domu/"
install -m 755 "$HERE/init-domu" "$RUN/domu/init"
install -D -m 644 "$HERE/wait-go.js" "$RUN/domu/opt/xsw/test-xen/wait-go.js"
(cd "$RUN/domu" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$SHARE/domu.cpio.gz"
# The stock netfront guests' ramdisk (no project, no node).
cp -al "$IMG/netfront" "$RUN/netfront"
install -m 755 "$HERE/init-netfront" "$RUN/netfront/init"
(cd "$RUN/netfront" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$SHARE/netfront.cpio.gz"
install -m 755 "$ROOT/contrib/vif-xsw" "$SHARE/vif-xsw"
ln -f "$IMG/vmlinux" "$SHARE/vmlinux" 2>/dev/null || cp "$IMG/vmlinux" "$SHARE/vmlinux"
cp "${XSW_XEN_SCENARIOS:-$HERE/scenarios.sh}" "$SHARE/scenarios.sh"
cp "$HERE/timing.sh" "$SHARE/timing.sh"
say "project packed ($(du -sh "$RUN/stage" | cut -f1)); booting Xen under QEMU (TCG)"

# ---- boot
SERIAL=$RUN/serial.log
# -cpu max without AVX: with QEMU 7.2's TCG, AVX state does not survive Xen's
# vCPU context switches intact, and node (glibc's AVX memcpy in V8's garbage
# collector) crashes at random in dom0 and in the guests.
CPU=${XSW_XEN_CPU:-max,-xsaveopt,-xsavec,-xsaves,-xgetbv1,-avx,-avx2,-fma,-f16c,-vaes,-vpclmulqdq}
if [ -n "$STRESS" ]; then
  stress-ng --cpu "$STRESS" --timeout "$(( TIMEOUT + 60 ))s" > "$RUN/stress.log" 2>&1 &
  STRESS_PID=$!
  say "load check: stress-ng --cpu $STRESS runs alongside (pid $STRESS_PID)"
fi
load_before=$(cut -d' ' -f1 /proc/loadavg)
started=$(date +%s)
deadline=$(( started + TIMEOUT ))
# dom0's boot is the first measurement of the machine's speed, so its own bound
# is a fixed share of the cap: 600 s with the default.
boot_limit=$(( TIMEOUT / 3 ))
# dom0 reads these (init-dom0); the scenarios end before the host's deadline.
printf 'XSW_XEN_TIMEOUT=%s\nXSW_XEN_STARTED=%s\n' "$TIMEOUT" "$started" > "$SHARE/config"
# Four emulated CPUs for dom0's two vCPUs and the guests' one each: Xen never
# has to share a CPU between them, and on a loaded host QEMU's four threads
# get a fairer share than two (measured: twice as fast beside other load).
qemu-system-x86_64 -accel tcg,thread=multi -cpu "$CPU" -smp 4 -m 2560 \
  -nodefaults -display none -no-reboot \
  -kernel "$IMG/xen" \
  -append "console=com1 com1=115200,8n1 smap=0 bootscrub=0 dom0_mem=1024M,max:1024M dom0_max_vcpus=2 loglvl=${XSW_XEN_LOGLVL:-warning} guest_loglvl=warning" \
  -initrd "$IMG/vmlinux console=hvc0 loglevel=4 rdinit=/init,$IMG/dom0.cpio" \
  -serial "file:$SERIAL" \
  -fsdev "local,id=xsw,path=$SHARE,security_model=none" \
  -device "virtio-9p-pci,fsdev=xsw,mount_tag=xsw" \
  > "$RUN/qemu.log" 2>&1 &
QEMU_PID=$!

ready=0
stopped=
while :; do
  elapsed=$(( $(date +%s) - started ))
  if [ $ready = 0 ] && grep -aq 'dom0 ready' "$SERIAL" 2>/dev/null; then
    ready=1; say "$(grep -ao 'dom0 ready.*' "$SERIAL" | head -1 | tr -d '\r') (${elapsed} s after QEMU started)"
  fi
  grep -aq 'XSW-XEN-DONE' "$SERIAL" 2>/dev/null && break
  if ! kill -0 "$QEMU_PID" 2>/dev/null; then
    stopped="QEMU exited before the end marker ($(tail -1 "$RUN/qemu.log" 2>/dev/null))"; break
  fi
  if [ $ready = 0 ] && [ "$elapsed" -ge "$boot_limit" ]; then
    stopped="dom0 was not ready within $boot_limit s (a third of XSW_XEN_TIMEOUT; a quiet machine boots it in about 40 s)"; break
  fi
  if [ "$elapsed" -ge "$TIMEOUT" ]; then
    stopped="XSW_XEN_TIMEOUT ($TIMEOUT s) ran out$([ -s "$SHARE/out/current" ] && echo " during the step: $(cat "$SHARE/out/current")")"; break
  fi
  sleep 1
done
done_line=$(grep -ao 'XSW-XEN-DONE.*' "$SERIAL" 2>/dev/null | tr -d '\r')
cleanup
say "QEMU stopped (${done_line:-no end marker}); logs in $SHARE/out and $SERIAL; load average $load_before at the start, $(cut -d' ' -f1 /proc/loadavg) at the end${STRESS:+ (with stress-ng --cpu $STRESS)}"

# ---- results
[ -n "$stopped" ] && echo "xen: the run was stopped: $stopped"
# Xen keeps time with a 32-bit HPET count that wraps every 43 s; when QEMU is
# starved that long Xen's clock and timers go wrong and the emulated machine
# can sit idle for minutes (seen once beside stress-ng and other load).
if grep -aq 'Platform timer appears to have unexpectedly wrapped' "$SERIAL" 2>/dev/null; then
  echo "xen: note: Xen reported '$(grep -ao 'Platform timer appears to have unexpectedly wrapped[^.]*' "$SERIAL" | head -1 | tr -d '\r')': the host starved QEMU for more than 43 s, so Xen's clock jumped and the emulated machine may have idled meanwhile (docs/xen.md, Timeouts)"
fi
# Every step's time against its calibrated budget (test/xen/timing.sh).
[ -s "$SHARE/out/timings" ] && sed 's/^/xen: time: /' "$SHARE/out/timings"
passed=0; failed=0
if [ -s "$SHARE/out/results" ]; then
  while read -r verdict rest; do
    echo "xen: $verdict $rest"
    if [ "$verdict" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  done < "$SHARE/out/results"
fi
for s in attach traffic restart destroy netif-attach netif-ping netif-iperf3 netif-restart netif-detach netif-destroy vhostnet; do
  grep -q "^[A-Z]* $s:" "$SHARE/out/results" 2>/dev/null && continue
  echo "xen: FAIL $s: no result (the run ended early${stopped:+: $stopped}; see the tails below)"
  failed=$((failed + 1))
done
if [ $failed -gt 0 ]; then
  echo "---- tail of $SERIAL (Xen's and dom0's console)"; tail -15 "$SERIAL" | tr -d '\r'
  [ -e "$SHARE/out/scenarios.log" ] && { echo "---- tail of $SHARE/out/scenarios.log"; tail -15 "$SHARE/out/scenarios.log"; }
fi
echo "xen: $passed passed, $failed failed ($(( $(date +%s) - T0 )) s)"
[ $failed = 0 ]
