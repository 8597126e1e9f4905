#!/bin/bash
# The test:xen scenarios, run by dom0's /init on real Xen. One line per
# scenario goes to $OUT/results: "PASS name: detail" or "FAIL name: reason".
#   1 attach    two guests attach; the back end registers both MACs with the
#               grefs they published in XenStore
#   2 traffic   txonly in vm1 -> back end vm2vm -> rxonly --verify in vm2:
#               every frame arrives, in order and intact
#   3 restart   the back end is SIGKILLed and restarted: it re-attaches both
#               running guests (they are not restarted)
#   4 destroy   `xl destroy vm1`: the back end detaches it and unmaps its
#               grants, so Xen can finish destroying the domain
set -u
OUT=/mnt/xsw/out
XSW=/opt/xsw
RUN=/run/xsw
FRAMES=${FRAMES:-1000}
RATE=100   # frames/s: the emulated guests must keep their RX rings filled
MAC1=00:00:00:00:00:11
MAC2=00:00:00:00:00:22
mkdir -p "$RUN"
# A crashing back end leaves its core with the results (analyse it on the host
# with gdb, the cached base tree as sysroot).
ulimit -c unlimited
echo "$OUT/core.%e.%p" > /proc/sys/kernel/core_pattern
: > "$OUT/results"
t0=$(cut -d' ' -f1 /proc/uptime)
say() { echo "[scenarios $(cut -d' ' -f1 /proc/uptime)] $*"; }
pass() { echo "PASS $1: $2" >> "$OUT/results"; say "PASS $1: $2"; }
fail() { echo "FAIL $1: $2" >> "$OUT/results"; say "FAIL $1: $2"; }

# wait_for SECONDS COMMAND...: polls every 0.5 s until COMMAND succeeds
wait_for() {
  local end=$(( $(date +%s) + $1 )); shift
  until "$@"; do
    [ "$(date +%s)" -ge "$end" ] && return 1
    sleep 0.5
  done
}

# The guests' kernel and ramdisk from tmpfs (libxl maps them; over 9p that is slow).
cp /mnt/xsw/vmlinux "$RUN/vmlinux"
cp /mnt/xsw/domu.cpio.gz "$RUN/domu.cpio.gz"

BACKENDS=0
BE_PID=
start_backend() {
  BACKENDS=$((BACKENDS + 1))
  BE_LOG=/tmp/backend-$BACKENDS.log
  node "$XSW/dist/backend/cli.js" --platform xen --vm2vm --stats 1 --json \
    > "/tmp/backend-$BACKENDS-stats.log" 2> "$BE_LOG" &
  BE_PID=$!
  say "back end $BACKENDS started (pid $BE_PID)"
}
registered() { grep -q "MAC_ADDRESS $1 and VLAN_TAG [0-9]* registered" "$BE_LOG"; }

# create_guest NAME XSW-FRONT-ARGS (comma-separated) [EXTRA-KERNEL-ARGS]
create_guest() {
  cat > "$RUN/$1.cfg" <<EOF
name = "$1"
type = "pv"
kernel = "$RUN/vmlinux"
ramdisk = "$RUN/domu.cpio.gz"
extra = "console=hvc0 loglevel=4 rdinit=/init xsw_args=$2 ${3:-}"
memory = 448
vcpus = 1
on_crash = "preserve"
EOF
  xl create "$RUN/$1.cfg" > "/tmp/xl-create-$1.log" 2>&1 || { cat "/tmp/xl-create-$1.log"; return 1; }
  say "created $1 (domid $(xl domid "$1"))"
}
guest_log() { echo "/var/log/xen/guest-$1.log"; }
# the last JSON stats line a guest printed (xsw-front --stats 1 --json)
last_stats() { grep -a '"devices"' "$(guest_log "$1")" 2>/dev/null | tail -1; }
field() { grep -o "\"$1\":[0-9]*" | head -1 | cut -d: -f2; }

# ---- 1 attach
scenario_attach() {
  start_backend
  wait_for 60 grep -q 'watching /local/domain' "$BE_LOG" || { fail attach "the back end did not start: $(tail -3 "$BE_LOG")"; return; }
  # Both guests boot at once; vm1 (the sender) starts xsw-front only when
  # told, after vm2 is registered, so no frame finds its destination missing.
  create_guest vm2 "--mac,$MAC2,--fwd,rxonly,--verify,--nb-mbuf,1024,--stats,1,--json" || { fail attach "xl create vm2 failed"; return; }
  create_guest vm1 "--mac,$MAC1,--fwd,txonly,--eth-peer,$MAC2,--count,$FRAMES,--rate,$RATE,--txpkts,256,--nb-mbuf,1024,--stats,1,--json" xsw_wait=1 \
    || { fail attach "xl create vm1 failed"; return; }
  if ! wait_for 150 registered "$MAC2"; then
    fail attach "vm2's device was not registered within 150 s; guest console: $(tail -3 "$(guest_log vm2)" | tr '\n' ' ')"
    return
  fi
  xenstore-write "/local/domain/$(xl domid vm1)/data/xsw-go" 1
  if ! wait_for 120 registered "$MAC1"; then
    fail attach "vm1's device was not registered within 120 s; guest console: $(tail -3 "$(guest_log vm1)" | tr '\n' ' ')"
    return
  fi
  # The grefs the back end mapped are the ones each guest published: check the
  # published values are real grant references (decimal, >= 8) in the guest's own tree.
  local name domid key value bad=
  for name in vm1 vm2; do
    domid=$(xl domid "$name")
    for key in 0_mempool_gref 0_rx_vring_gref 0_tx_vring_gref 0_vring_flag; do
      value=$(xenstore-read "/local/domain/$domid/control/dpdk/$key" 2>/dev/null)
      [[ $value =~ ^[0-9]+(,[0-9]+)*$ ]] || { bad+=" $name:$key=$value"; continue; }
      for ref in ${value//,/ }; do [ "$ref" -ge 8 ] || bad+=" $name:$key=$value"; done
    done
    grep -q "\"domid\":$domid,.*registered" "$BE_LOG" || bad+=" $name:no-registered-line-for-domid-$domid"
  done
  local perms
  perms=$(xenstore-ls -p "/local/domain/$(xl domid vm1)/control" 2>/dev/null | grep '^dpdk' | grep -o '(.*)')
  [ -n "$bad" ] && { fail attach "bad XenStore values:$bad"; return; }
  pass attach "vm1 (domid $(xl domid vm1)) and vm2 (domid $(xl domid vm2)) registered; flag grefs $(xenstore-read "/local/domain/$(xl domid vm1)/control/dpdk/0_vring_flag"), $(xenstore-read "/local/domain/$(xl domid vm2)/control/dpdk/0_vring_flag"); control/dpdk perms $perms"
}

# ---- 2 traffic
rx_done() { [ "$(last_stats vm2 | field rx_packets)" = "$FRAMES" ]; }
scenario_traffic() {
  if ! wait_for 120 rx_done; then
    fail traffic "vm2 received $(last_stats vm2 | field rx_packets) of $FRAMES frames in 120 s; vm1: $(last_stats vm1); back end: $(tail -1 "/tmp/backend-$BACKENDS-stats.log")"
    return
  fi
  local s bad order tx
  s=$(last_stats vm2)
  bad=$(echo "$s" | field rx_bad); order=$(echo "$s" | field rx_out_of_order)
  tx=$(last_stats vm1 | field tx_packets)
  if [ "$bad" != 0 ] || [ "$order" != 0 ] || [ "$tx" != "$FRAMES" ]; then
    fail traffic "vm1 sent $tx, vm2 received $FRAMES with rx_bad=$bad rx_out_of_order=$order"
    return
  fi
  pass traffic "$FRAMES frames of 256 bytes at $RATE/s vm1 -> vm2 through the back end, rx_bad=0 rx_out_of_order=0"
}

# ---- 3 restart
scenario_restart() {
  local d1 d2
  d1=$(xl domid vm1); d2=$(xl domid vm2)
  kill -KILL "$BE_PID"; wait "$BE_PID" 2>/dev/null
  start_backend
  if ! wait_for 90 registered "$MAC1" || ! wait_for 30 registered "$MAC2"; then
    fail restart "the restarted back end did not re-attach both guests: $(grep -c registered "$BE_LOG") registered; $(tail -2 "$BE_LOG" | tr '\n' ' ')"
    return
  fi
  if [ "$(xl domid vm1)" != "$d1" ] || [ "$(xl domid vm2)" != "$d2" ]; then
    fail restart "the guests were restarted (domids $d1,$d2 -> $(xl domid vm1),$(xl domid vm2))"; return
  fi
  local starts
  starts=$(cat "$(guest_log vm1)" "$(guest_log vm2)" | grep -ac 'xsw-front running')
  [ "$starts" = 2 ] || { fail restart "xsw-front started $starts times in the two guests (expected 2)"; return; }
  pass restart "after SIGKILL the new back end re-attached vm1 (domid $d1) and vm2 (domid $d2), guests untouched"
}

# ---- 4 destroy
gntdev_maps() { grep -c /dev/xen/gntdev "/proc/$BE_PID/maps" 2>/dev/null || echo 0; }
domain_gone() { ! xl list 2>/dev/null | awk 'NR>1{print $2}' | grep -qx "$1"; }
scenario_destroy() {
  local d1 before after
  d1=$(xl domid vm1)
  before=$(gntdev_maps)
  xl destroy vm1
  if ! wait_for 60 grep -q "detached domain $d1 device 0" "$BE_LOG"; then
    fail destroy "the back end did not detach domain $d1 within 60 s: $(tail -2 "$BE_LOG" | tr '\n' ' ')"; return
  fi
  # A domain whose pages are still mapped by dom0 lingers as a zombie.
  if ! wait_for 30 domain_gone "$d1"; then
    fail destroy "domain $d1 is still listed after xl destroy (its grants are still mapped?): $(xl list | tr '\n' ' ')"; return
  fi
  after=$(gntdev_maps)
  if ! [ "$after" -lt "$before" ]; then
    fail destroy "the back end's gntdev mappings did not shrink ($before -> $after)"; return
  fi
  kill -0 "$BE_PID" 2>/dev/null || { fail destroy "the back end died"; return; }
  registered "$MAC2" || { fail destroy "vm2 lost its registration"; return; }
  pass destroy "domain $d1 detached ($(grep -o "detached domain $d1 device 0: [^\"]*" "$BE_LOG" | head -1)); gntdev mappings $before -> $after; the domain is gone"
}

scenario_attach
if grep -q '^PASS attach' "$OUT/results"; then
  scenario_traffic
  scenario_restart
  scenario_destroy
else
  for s in traffic restart destroy; do fail "$s" "skipped: the guests did not attach"; done
fi
# SIGTERM must end the back end promptly (it detaches and unmaps everything first).
kill -TERM "$BE_PID" 2>/dev/null
if wait_for 20 eval '! kill -0 "$BE_PID" 2>/dev/null'; then
  say "the back end exited on SIGTERM"
else
  say "the back end ignored SIGTERM for 20 s; killing it"; kill -KILL "$BE_PID"
fi
xl list
say "done in $(awk -v t0="$t0" '{printf "%.1f", $1 - t0}' /proc/uptime) s"
