#!/bin/bash
# The test:xen scenarios, run by dom0's /init on real Xen. One line per
# scenario goes to $OUT/results: "PASS name: detail" or "FAIL name: reason";
# every wait is a step of timing.sh (its time and budget go to $OUT/timings).
#   1 attach    two guests attach; the back end registers both MACs with the
#               grefs they published in XenStore
#   2 traffic   txonly in vm1 -> back end vm2vm -> rxonly --verify in vm2:
#               every frame arrives, in order and intact
#   3 restart   the back end is SIGKILLed and restarted: it re-attaches both
#               running guests (they are not restarted)
#   4 destroy   `xl destroy vm1`: the back end detaches it and unmaps its
#               grants, so Xen can finish destroying the domain
#   5 netif     two stock netfront guests (no xsw inside: test/xen/init-netfront)
#               beside a PMD guest in TAP mode: their vifs connect (netif-attach),
#               ping each other and the PMD guest's TAP (netif-ping), an iperf3
#               TCP stream for 10 s (netif-iperf3), the back end SIGKILLed and
#               restarted reconnects the vifs (netif-restart), `xl
#               network-detach` (netif-detach) and `xl destroy` (netif-destroy)
#   6 vhostnet  a back end with -p vhost-net:xswnic0 (dom0's vhost_net serves
#               the NIC's rings); dom0 pings a tap-mode guest (vm3) through
#               it and the NIC counters move
set -u
OUT=/mnt/xsw/out
XSW=/opt/xsw
RUN=/run/xsw
FRAMES=${FRAMES:-1000}
MAC1=00:00:00:00:00:11
MAC2=00:00:00:00:00:22
mkdir -p "$RUN"
# A crashing back end leaves its core with the results (analyse it on the host
# with gdb, the cached base tree as sysroot).
ulimit -c unlimited
echo "$OUT/core.%e.%p" > /proc/sys/kernel/core_pattern
: > "$OUT/results"
: > "$OUT/timings"
read -r t0 _ < /proc/uptime
say() { local u _; read -r u _ < /proc/uptime; echo "[scenarios $u] $*"; }
pass() { echo "PASS $1: $2" >> "$OUT/results"; say "PASS $1: $2"; }
fail() { echo "FAIL $1: $2" >> "$OUT/results"; say "FAIL $1: $2"; }
# shellcheck source=test/xen/timing.sh
. /mnt/xsw/timing.sh

# What each step takes on the reference machine (seconds), i.e. when
# timing.sh's calibration takes its CAL_QUIET; timing.sh turns them into
# budgets for this run.
Q_BACKEND=8       # node starts the back end until it watches /local/domain
Q_COPY=6          # dom0 copies the guests' kernel and ramdisk (105 MB) from 9p to tmpfs
Q_CREATE=15       # xl create of a PV guest (loads its kernel and ramdisk)
Q_BOOT=50         # from xl create to the guest's /init (the other guest boots too)
Q_FRONT=8         # node starts xsw-front until it has published its device
Q_REGISTER=10     # the back end attaches a published device
Q_REATTACH=30     # a restarted back end re-attaches both guests
Q_DETACH=8        # the back end detaches a destroyed guest
Q_GONE=5          # Xen finishes destroying it
Q_EXIT=3          # the back end exits on SIGTERM
# Timer slack (ns) of the back end and of everything in the guests: their idle
# polling wakes up to 2000 times a second, which under emulation costs about
# half an emulated CPU each; with 20 ms of slack those wake-ups coalesce.
TIMERSLACK=20000000

if ! calibrate; then
  for s in attach traffic restart destroy; do fail "$s" "skipped: the calibration failed (node does not run in dom0)"; done
  exit 1
fi
Q_TRAFFIC=$(( FRAMES / 100 + 5 ))   # at 100 frames/s, the quiet rate

# The guests' kernel and ramdisk from tmpfs (libxl maps them; over 9p that is
# slow), copied while the back end starts.
tick; COPY_FROM=$NOW
cp /mnt/xsw/vmlinux /mnt/xsw/domu.cpio.gz /mnt/xsw/netfront.cpio.gz "$RUN/" &
COPY_PID=$!

BACKENDS=0
BE_PID=
# start_backend [MORE-ARGS...]
start_backend() {
  BACKENDS=$((BACKENDS + 1))
  BE_LOG=/tmp/backend-$BACKENDS.log
  (echo "$TIMERSLACK" > /proc/self/timerslack_ns
   exec node "$XSW/dist/backend/cli.js" --platform xen --vm2vm --stats 1 --json "$@") \
    > "/tmp/backend-$BACKENDS-stats.log" 2> "$BE_LOG" &
  BE_PID=$!
  say "back end $BACKENDS started (pid $BE_PID)"
}
registered() { file_has "$BE_LOG" "MAC_ADDRESS $1 and VLAN_TAG [0-9]+ registered"; }
be_says() { file_has "$BE_LOG" "$1"; }
be_gone() { ! kill -0 "$BE_PID" 2>/dev/null; }
be_tail() { tail -"${1:-2}" "$BE_LOG" 2>/dev/null | tr '\n' ' '; }
# Progress counters for timing.sh's STEP_PROGRESS: the CPU time of the back
# end, or of a domain that is neither crashed nor dying; empty when gone.
be_cpu() { kill -0 "$BE_PID" 2>/dev/null && ps -o times= -p "$BE_PID" | tr -d ' '; }
dom_cpu() { xl list "$1" 2>/dev/null | awk 'NR == 2 && $5 !~ /[cd]/ { print $6 }'; }
# Checks between the waits also avoid programs where they can (each costs up
# to seconds of the emulated machine): one program's output parsed by bash.
# xl_domids: DOMIDS[name]=domid for every domain `xl list` shows (one xl)
declare -A DOMIDS
xl_domids() {
  local out line re='^([^ ]+) +([0-9]+) '
  DOMIDS=()
  out=$(xl list 2>/dev/null) || return 1
  while IFS= read -r line; do [[ $line =~ $re ]] && DOMIDS[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}; done <<< "$out"
  return 0
}

guest_log() { echo "/var/log/xen/guest-$1.log"; }
guest_says() { file_has "/var/log/xen/guest-$1.log" "$2"; }
# last_stats NAME: the last JSON stats line a guest printed (xsw-front
# --stats 1 --json), from its console log's last lines (one tail)
last_stats() {
  local lines line i
  lines=$(tail -n 40 "$(guest_log "$1")" 2>/dev/null)
  mapfile -t lines <<< "$lines"
  for (( i = ${#lines[@]} - 1; i >= 0; i-- )); do
    line=${lines[i]}
    [[ $line == *'"devices"'* ]] && { echo "${line%$'\r'}"; return; }
  done
}
# field NAME < stats line: a counter's value (the first device's)
field() { local s re="\"$1\":([0-9]+)"; IFS= read -r s; [[ $s =~ $re ]] && echo "${BASH_REMATCH[1]}"; }
# guest_failed SCENARIO NAME: the FAIL line for a guest's step that failed
guest_failed() { fail "$1" "$STEP_ERROR; last console lines of $2: $(console_tail "$2")"; }

# create_guest NAME XSW-FRONT-ARGS (comma-separated) [EXTRA-KERNEL-ARGS]
create_guest() {
  cat > "$RUN/$1.cfg" <<EOF
name = "$1"
type = "pv"
kernel = "$RUN/vmlinux"
ramdisk = "$RUN/domu.cpio.gz"
extra = "console=hvc0 loglevel=4 rdinit=/init xsw_timerslack=$TIMERSLACK xsw_args=$2 ${3:-}"
memory = 448
vcpus = 1
on_crash = "preserve"
EOF
  xl_create "$1"
}
# xl_create NAME: `xl create`, waited for as a step (its progress: xl's CPU
# time); tried once more when it fails or stalls, after destroying what it
# left (no domain of that name exists then, so trying again is idempotent).
# Sets CREATED_<NAME>, the uptime the guest's later steps are timed from.
xl_create() {
  local try from pid rc
  for try in 1 2; do
    from=$(now)
    xl create "$RUN/$1.cfg" > "/tmp/xl-create-$1.log" 2>&1 &
    pid=$!
    if STEP_PROGRESS="proc_cpu $pid" step "$1" "created by xl create" "$Q_CREATE" proc_gone "$pid"; then
      wait "$pid"; rc=$?
      if [ "$rc" = 0 ]; then
        printf -v "CREATED_$1" %s "$from"
        printf -v "RUNNING_$1" '%(%s)T' -1
        printf -v "DOMID_$1" %s "$(xl domid "$1")"
        note "$1: domid $(domid "$1")"
        return 0
      fi
      STEP_ERROR="$1: xl create failed (exit status $rc): $(tail -2 "/tmp/xl-create-$1.log" | tr '\n' ' ')"
    else
      kill "$pid" 2> /dev/null; wait "$pid"
    fi
    note "$1: attempt $try of 2 failed: $STEP_ERROR"
    xl destroy "$1" > /dev/null 2>&1
  done
  return 1
}
proc_gone() { ! kill -0 "$1" 2> /dev/null; }
proc_cpu() { kill -0 "$1" 2> /dev/null && ps -o times= -p "$1" | tr -d ' '; }
created() { local v="CREATED_$1"; echo "${!v}"; }
# domid NAME: the guest's domid when it was created (xl costs a second a call)
domid() { local v="DOMID_$1"; echo "${!v}"; }
# booted NAME: its /init has run (timed from its creation)
booted() {
  STEP_FROM=$(created "$1") STEP_PROGRESS="dom_cpu $1" \
    step "$1" "booted to userspace" "$Q_BOOT" guest_says "$1" XSW-GUEST-UP || return 1
  # Where the time went: the guest's uptime and wall clock at its /init.
  local re='uptime=([0-9]+)[.0-9]* epoch=([0-9]+)' started="RUNNING_$1"
  [[ $FH_LINE =~ $re ]] && note "$1: its kernel reached userspace in ${BASH_REMATCH[1]} s of its uptime, $(( BASH_REMATCH[2] - ${!started} )) s after xl create returned (by the clocks of dom0 and the guest)"
}
# front_running NAME: its xsw-front has published its device
front_running() {
  STEP_PROGRESS="dom_cpu $1" step "$1" "xsw-front running" "$Q_FRONT" guest_says "$1" 'xsw-front running'
}
# attached NAME MAC: the back end registered the guest's device
attached() {
  STEP_PROGRESS=be_cpu step "$1" "registered by the back end" "$Q_REGISTER" registered "$2"
}

# ---- 1 attach
scenario_attach() {
  start_backend
  STEP_PROGRESS=be_cpu step "back end" "watching /local/domain" "$Q_BACKEND" be_says 'watching /local/domain' \
    || { fail attach "$STEP_ERROR; back end log: $(be_tail 3)"; return; }
  STEP_FROM=$COPY_FROM STEP_PROGRESS="proc_cpu $COPY_PID" step dom0 "copied the guests' kernel and ramdisk to tmpfs" "$Q_COPY" proc_gone "$COPY_PID" \
    || { fail attach "$STEP_ERROR"; return; }
  wait "$COPY_PID" || { fail attach "copying the guests' kernel and ramdisk from /mnt/xsw to $RUN failed"; return; }
  # The sender's rate follows the measured speed: the emulated receiver must
  # keep its RX ring filled (on a quiet machine, 5 times this rate dropped 1
  # frame in 2000 as rx_no_buffer).
  RATE=$(( 10000 / SPEED_C < 10 ? 10 : 10000 / SPEED_C ))
  # Both guests boot at once; vm1 (the sender) starts xsw-front only when
  # told, after vm2 is registered, so no frame finds its destination missing.
  create_guest vm2 "--mac,$MAC2,--fwd,rxonly,--verify,--nb-mbuf,1024,--stats,1,--json" \
    || { fail attach "$STEP_ERROR"; return; }
  create_guest vm1 "--mac,$MAC1,--fwd,txonly,--eth-peer,$MAC2,--count,$FRAMES,--rate,$RATE,--txpkts,256,--nb-mbuf,1024,--stats,1,--json" xsw_wait=1 \
    || { fail attach "$STEP_ERROR"; return; }
  booted vm2 && front_running vm2 || { guest_failed attach vm2; return; }
  attached vm2 "$MAC2" || { fail attach "$STEP_ERROR; back end log: $(be_tail 2)"; return; }
  booted vm1 || { guest_failed attach vm1; return; }
  xenstore-write "/local/domain/$(domid vm1)/data/xsw-go" 1
  front_running vm1 || { guest_failed attach vm1; return; }
  attached vm1 "$MAC1" || { fail attach "$STEP_ERROR; back end log: $(be_tail 2)"; return; }
  # The grefs the back end mapped are the ones each guest published: check the
  # published values are real grant references (decimal, >= 8) in the guest's own tree.
  local keys=(0_mempool_gref 0_rx_vring_gref 0_tx_vring_gref 0_vring_flag)
  local name id key value values i bad= ref
  declare -A flag
  for name in vm1 vm2; do
    id=$(domid "$name")
    values=$(xenstore-read "${keys[@]/#//local/domain/$id/control/dpdk/}" 2>/dev/null)
    mapfile -t values <<< "$values"
    for i in "${!keys[@]}"; do
      key=${keys[i]}; value=${values[i]:-}
      [[ $value =~ ^[0-9]+(,[0-9]+)*$ ]] || { bad+=" $name:$key=$value"; continue; }
      for ref in ${value//,/ }; do [ "$ref" -ge 8 ] || bad+=" $name:$key=$value"; done
    done
    flag[$name]=${values[3]:-}
    be_says "\"domid\":$id,.*registered" || bad+=" $name:no-registered-line-for-domid-$id"
  done
  local perms re='(^|'$'\n'')dpdk[^'$'\n'']*(\([^)]*\))'
  perms=$(xenstore-ls -p "/local/domain/$(domid vm1)/control" 2>/dev/null)
  [[ $perms =~ $re ]] && perms=${BASH_REMATCH[2]} || perms="(none)"
  [ -n "$bad" ] && { fail attach "bad XenStore values:$bad"; return; }
  pass attach "vm1 (domid $(domid vm1)) and vm2 (domid $(domid vm2)) registered; flag grefs ${flag[vm1]}, ${flag[vm2]}; control/dpdk perms $perms"
}

# ---- 2 traffic
rx_count() { last_stats vm2 | field rx_packets; }
rx_done() { guest_says vm2 "\"rx_packets\":$FRAMES[,}]"; }
scenario_traffic() {
  if ! STEP_PROGRESS=rx_count step vm2 "received $FRAMES frames sent at $RATE/s" "$Q_TRAFFIC" rx_done; then
    fail traffic "$STEP_ERROR; vm2 received $(rx_count) of $FRAMES frames; vm1: $(last_stats vm1); back end: $(tail -1 "/tmp/backend-$BACKENDS-stats.log")"
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
  local d1 d2 from
  d1=$(domid vm1); d2=$(domid vm2)
  kill -KILL "$BE_PID"; wait "$BE_PID" 2>/dev/null
  from=$(now)
  start_backend
  # Both from the restart: the back end attaches every announced device before it watches.
  if ! STEP_FROM=$from STEP_PROGRESS=be_cpu step "back end $BACKENDS" "re-attached vm1" "$Q_REATTACH" registered "$MAC1" \
    || ! STEP_FROM=$from STEP_PROGRESS=be_cpu step "back end $BACKENDS" "re-attached vm2" "$Q_REATTACH" registered "$MAC2"; then
    fail restart "$STEP_ERROR; $(grep -c registered "$BE_LOG") registered; back end log: $(be_tail 2)"
    return
  fi
  xl_domids
  if [ "${DOMIDS[vm1]:-}" != "$d1" ] || [ "${DOMIDS[vm2]:-}" != "$d2" ]; then
    fail restart "the guests were restarted (domids $d1,$d2 -> ${DOMIDS[vm1]:-none},${DOMIDS[vm2]:-none})"; return
  fi
  local starts counts
  counts=$(grep -ac 'xsw-front running' "$(guest_log vm1)" "$(guest_log vm2)")
  [[ $counts =~ :([0-9]+).*:([0-9]+) ]] && starts=$(( BASH_REMATCH[1] + BASH_REMATCH[2] ))
  [ "$starts" = 2 ] || { fail restart "xsw-front started $starts times in the two guests (expected 2)"; return; }
  pass restart "after SIGKILL the new back end re-attached vm1 (domid $d1) and vm2 (domid $d2), guests untouched"
}

# ---- 4 destroy
gntdev_maps() { grep -c /dev/xen/gntdev "/proc/$BE_PID/maps" 2>/dev/null || echo 0; }
domain_gone() { xl_domids && ! [[ " ${DOMIDS[*]} " == *" $1 "* ]]; }
scenario_destroy() {
  local d1 before after
  d1=$(domid vm1)
  before=$(gntdev_maps)
  xl destroy vm1
  if ! STEP_PROGRESS=be_cpu step "back end" "detached domain $d1" "$Q_DETACH" be_says "detached domain $d1 device 0"; then
    fail destroy "$STEP_ERROR; back end log: $(be_tail 2)"; return
  fi
  # A domain whose pages are still mapped by dom0 lingers as a zombie.
  if ! step vm1 "gone from xl list" "$Q_GONE" domain_gone "$d1"; then
    fail destroy "$STEP_ERROR; domain $d1 is still listed after xl destroy (its grants are still mapped?): $(xl list | tr '\n' ' ')"; return
  fi
  after=$(gntdev_maps)
  if ! [ "$after" -lt "$before" ]; then
    fail destroy "the back end's gntdev mappings did not shrink ($before -> $after)"; return
  fi
  kill -0 "$BE_PID" 2>/dev/null || { fail destroy "the back end died"; return; }
  registered "$MAC2" || { fail destroy "vm2 lost its registration"; return; }
  pass destroy "domain $d1 detached ($(grep -o "detached domain $d1 device 0: [^\"]*" "$BE_LOG" | head -1)); gntdev mappings $before -> $after; the domain is gone"
}

# ---- 5 netif: stock netfront guests
NF_NET=10.13.0
MAC_N1=00:16:3e:13:00:11
MAC_N2=00:16:3e:13:00:12
MAC_PMD=00:16:3e:13:00:03
Q_NF_BOOT=30      # from xl create to a netfront guest's /init (three guests boot)
Q_VIF=10          # the back end connects a vif once netfront wrote its keys
Q_CMD=15          # a guest runs a short command dom0 gave it (pings included)
Q_IPERF=25        # iperf3 -t 10 with its connection set-up and report
Q_NETDETACH=10    # xl network-detach (libxl waits up to 10 s for state 6)
# create_netfront NAME IP MAC: a stock guest, its vif served by xsw-backend
# through contrib/vif-xsw (installed in dom0 below)
create_netfront() {
  cat > "$RUN/$1.cfg" <<EOF
name = "$1"
type = "pv"
kernel = "$RUN/vmlinux"
ramdisk = "$RUN/netfront.cpio.gz"
extra = "console=hvc0 loglevel=4 rdinit=/init xsw_ip=$2/24"
memory = 160
vcpus = 1
on_crash = "preserve"
vif = [ 'mac=$3,script=vif-xsw' ]
EOF
  xl_create "$1"
}
nf_booted() {
  STEP_FROM=$(created "$1") STEP_PROGRESS="dom_cpu $1" \
    step "$1" "netfront guest up (eth0 addressed)" "$Q_NF_BOOT" guest_says "$1" XSW-NETFRONT-UP
}
vif_connected() {
  STEP_PROGRESS=be_cpu step "back end $BACKENDS" "connected vif $(domid "$1")/0 of $1" "$Q_VIF" \
    be_says "vif $(domid "$1")/0 \\(netif\\) connected"
}
# guest_cmd NAME COMMAND: the guest's init runs COMMAND once (test/xen/init-netfront);
# CMD_N[NAME] is its number
declare -A CMD_N
guest_cmd() {
  CMD_N[$1]=$(( ${CMD_N[$1]:-0} + 1 ))
  xenstore-write "/local/domain/$(domid "$1")/data/xsw-cmd" "${CMD_N[$1]} $2"
}
# cmd_wait NAME WHAT QUIET: waits for the last command's end; sets CMD_RC, CMD_OUT
cmd_done() { guest_says "$1" "XSW-CMD $2 rc=([0-9]+)"; }
cmd_wait() {
  local n=${CMD_N[$1]}
  CMD_RC= CMD_OUT=
  STEP_PROGRESS="dom_cpu $1" step "$1" "$2" "$3" cmd_done "$1" "$n" || return 1
  [[ $FH_LINE =~ rc=([0-9]+) ]] && CMD_RC=${BASH_REMATCH[1]}
  CMD_OUT=$(sed -n "/XSW-CMD $n begin/,/XSW-CMD $n rc=/p" "$(guest_log "$1")" | tr -d '\r' | grep -v '^XSW-CMD')
  return 0
}
# ping_summary OUTPUT: "received/sent" of each ping in a command's output
ping_summary() { grep -o '[0-9]* packets transmitted, [0-9]* packets received' <<< "$1" | awk '{printf "%s%s/%s", (NR>1?" ":""), $4, $1}'; }
# pings NAME ADDR...: one command in the guest, a ping per address (3 echo
# requests, at most 30 s each). Busybox's ping stops waiting soon after its
# last request, and under emulation a reply can take seconds: a ping passes
# when it got replies (pings_ok); the counts are shown.
pings() {
  local g=$1 a c=; shift
  PINGS=$#
  for a in "$@"; do c+="ping -c 3 -w 30 $a; "; done
  guest_cmd "$g" "${c}true"
}
# pings_ok OUTPUT: each of the PINGS pings in a command's output got a reply
pings_ok() {
  local got
  got=$(grep -c ' packets transmitted, [1-9][0-9]* packets received' <<< "$1")
  [ "$got" = "$PINGS" ]
}
# stats_has_netif MAC: the back end's last JSON stats line lists MAC as an active device of kind netif
stats_has_netif() {
  local line re="\"mac\":\"$1\",[^{]*\"state\":\"active\",[^{]*\"drops\":\\{[^}]*\\},\"kind\":\"netif\""
  line=$(tail -n 1 "/tmp/backend-$BACKENDS-stats.log" 2>/dev/null)
  [[ $line =~ $re ]]
}
stats_lacks() { local line; line=$(tail -n 1 "/tmp/backend-$BACKENDS-stats.log" 2>/dev/null); [[ $line == *'"devices"'* && $line != *"\"$1\""* ]]; }
both_netif() { stats_has_netif "$MAC_N1" && stats_has_netif "$MAC_N2"; }
# vif_states NAME: "back-end state/front-end state" of its vif 0
vif_states() { xenstore-read "/local/domain/0/backend/vif/$(domid "$1")/0/state" "/local/domain/$(domid "$1")/device/vif/0/state" 2>/dev/null | paste -sd/ -; }
cmd_tail() { tail -n "${2:-4}" <<< "$1" | paste -sd'|' -; }

scenario_netif() {
  local name s1 s2 out= sender receiver d1 d2 from pid rc
  # The PMD guests of the scenarios above leave: the memory is for these three.
  xl destroy vm1 > /dev/null 2>&1; xl destroy vm2 > /dev/null 2>&1
  if be_gone; then
    start_backend
    STEP_PROGRESS=be_cpu step "back end $BACKENDS" "watching /local/domain" "$Q_BACKEND" be_says 'watching /local/domain' \
      || { fail netif-attach "$STEP_ERROR; back end log: $(be_tail 3)"; return 1; }
  fi
  mkdir -p /etc/xen/scripts && install -m 755 /mnt/xsw/vif-xsw /etc/xen/scripts/vif-xsw
  # All three boot at once.
  create_guest pmd "--mac,$MAC_PMD,--tap,xsw0" "xsw_tap_addr=xsw0=$NF_NET.3/24" || { fail netif-attach "$STEP_ERROR"; return 1; }
  create_netfront n1 "$NF_NET.11" "$MAC_N1" || { fail netif-attach "$STEP_ERROR"; return 1; }
  create_netfront n2 "$NF_NET.12" "$MAC_N2" || { fail netif-attach "$STEP_ERROR"; return 1; }
  for name in n1 n2; do
    nf_booted "$name" || { guest_failed netif-attach "$name"; return 1; }
    vif_connected "$name" || { fail netif-attach "$STEP_ERROR; back end log: $(be_tail 3); $name: $(console_tail "$name" 3)"; return 1; }
  done
  booted pmd && front_running pmd || { guest_failed netif-attach pmd; return 1; }
  attached pmd "$MAC_PMD" || { fail netif-attach "$STEP_ERROR; back end log: $(be_tail 2)"; return 1; }
  step pmd "TAP xsw0 addressed" "$Q_CMD" guest_says pmd XSW-TAP-UP || { guest_failed netif-attach pmd; return 1; }
  step "back end $BACKENDS" "shows both vifs as kind netif in its stats" 5 both_netif \
    || { fail netif-attach "$STEP_ERROR; last stats: $(tail -n 1 "/tmp/backend-$BACKENDS-stats.log")"; return 1; }
  s1=$(vif_states n1); s2=$(vif_states n2)
  [ "$s1" = 4/4 ] && [ "$s2" = 4/4 ] || { fail netif-attach "vif states (back end/front end) n1 $s1, n2 $s2, expected 4/4"; return 1; }
  pass netif-attach "n1 (domid $(domid n1)) and n2 (domid $(domid n2)) Connected (4/4) through vif-xsw, kind netif in the stats, beside the PMD guest pmd (TAP xsw0 $NF_NET.3)"

  # ---- pings, in both guests at once
  pings n1 "$NF_NET.12" "$NF_NET.3"
  pings n2 "$NF_NET.11" "$NF_NET.3"
  for name in n1 n2; do
    cmd_wait "$name" "pinged the other netfront guest and the PMD guest" "$Q_CMD" || { guest_failed netif-ping "$name"; return 1; }
    pings_ok "$CMD_OUT" || { fail netif-ping "$name: a ping got no reply: $(cmd_tail "$CMD_OUT")"; return 1; }
    out+=" $name $(ping_summary "$CMD_OUT");"
  done
  pass netif-ping "replies (received/sent) n1 -> n2, pmd and n2 -> n1, pmd:${out%;}"

  # ---- iperf3: a TCP stream n1 -> n2 for 10 s
  guest_cmd n2 "iperf3 -s -D -1 && echo iperf3 server started"
  cmd_wait n2 "started the iperf3 server" "$Q_CMD" && [ "$CMD_RC" = 0 ] \
    || { fail netif-iperf3 "${STEP_ERROR:-iperf3 -s failed: $(cmd_tail "$CMD_OUT")}; n2: $(console_tail n2 3)"; return 1; }
  guest_cmd n1 "iperf3 -c $NF_NET.12 -t 10 -f m"
  cmd_wait n1 "ran iperf3 -c n2 -t 10" "$Q_IPERF" || { fail netif-iperf3 "$STEP_ERROR; n1: $(console_tail n1 4)"; return 1; }
  sender=$(grep 'sender$' <<< "$CMD_OUT" | tail -1 | tr -s ' ')
  receiver=$(grep 'receiver$' <<< "$CMD_OUT" | tail -1 | tr -s ' ')
  if [ "$CMD_RC" != 0 ] || [ -z "$receiver" ] || grep -qi 'error' <<< "$CMD_OUT"; then
    fail netif-iperf3 "iperf3 -c exited with status $CMD_RC: $(cmd_tail "$CMD_OUT")"; return 1
  fi
  note "iperf3 TCP n1 -> n2 (netfront -> xsw netif -> switch -> netif -> netfront, QEMU TCG): sender ${sender#*sec }; receiver ${receiver#*sec }"
  pass netif-iperf3 "10 s TCP stream n1 -> n2 with no errors: sender ${sender#*sec }; receiver ${receiver#*sec }"

  # ---- the back end SIGKILLed and restarted: the vifs stay Connected in the guests
  d1=$(domid n1); d2=$(domid n2)
  kill -KILL "$BE_PID"; wait "$BE_PID" 2>/dev/null
  from=$(now)
  start_backend
  for name in n1 n2; do
    STEP_FROM=$from STEP_PROGRESS=be_cpu step "back end $BACKENDS" "reconnected vif $(domid "$name")/0 of $name" "$Q_REATTACH" \
      be_says "vif $(domid "$name")/0 \\(netif\\) connected" || { fail netif-restart "$STEP_ERROR; back end log: $(be_tail 3)"; return 1; }
  done
  STEP_FROM=$from STEP_PROGRESS=be_cpu step "back end $BACKENDS" "re-attached pmd" "$Q_REATTACH" registered "$MAC_PMD" \
    || { fail netif-restart "$STEP_ERROR; back end log: $(be_tail 3)"; return 1; }
  pings n1 "$NF_NET.12" "$NF_NET.3"
  cmd_wait n1 "pinged n2 and pmd after the restart" "$Q_CMD" || { guest_failed netif-restart n1; return 1; }
  pings_ok "$CMD_OUT" || { fail netif-restart "a ping of n1's after the restart got no reply: $(cmd_tail "$CMD_OUT")"; return 1; }
  s1=$(vif_states n1); s2=$(vif_states n2)
  [ "$s1" = 4/4 ] && [ "$s2" = 4/4 ] || { fail netif-restart "vif states after the restart n1 $s1, n2 $s2, expected 4/4"; return 1; }
  pass netif-restart "after SIGKILL the new back end reconnected both vifs (state 4/4 after it, the guests' netfront never reconnected) and n1 pings n2 and pmd again: $(ping_summary "$CMD_OUT")"

  # ---- xl network-detach n2 0
  from=$(now)
  xl network-detach n2 0 > /tmp/xl-network-detach.log 2>&1 &
  pid=$!
  STEP_PROGRESS="proc_cpu $pid" step n2 "vif removed by xl network-detach" "$Q_NETDETACH" proc_gone "$pid" \
    || { kill "$pid" 2>/dev/null; fail netif-detach "$STEP_ERROR; back end log: $(be_tail 2)"; return 1; }
  wait "$pid"; rc=$?
  [ "$rc" = 0 ] || { fail netif-detach "xl network-detach n2 0 failed (exit status $rc): $(tail -n 2 /tmp/xl-network-detach.log | paste -sd' ' -)"; return 1; }
  be_says "vif $d2/0 going offline" || { fail netif-detach "the back end did not log 'vif $d2/0 going offline': $(be_tail 2)"; return 1; }
  step "back end $BACKENDS" "dropped n2 from its stats" 5 stats_lacks "$MAC_N2" \
    || { fail netif-detach "$STEP_ERROR; last stats: $(tail -n 1 "/tmp/backend-$BACKENDS-stats.log")"; return 1; }
  stats_has_netif "$MAC_N1" || { fail netif-detach "n1 left the stats with n2"; return 1; }
  pass netif-detach "xl network-detach n2 0 returned 0 in $(( $(now) - from )) s (the back end answered online=0 with state 6); n2 gone from the stats, n1 still in them"

  # ---- xl destroy n1
  xl destroy n1
  step "back end $BACKENDS" "detached vif $d1/0 of the destroyed n1" "$Q_DETACH" be_says "vif $d1/0 (removed|: its front end disappeared|going offline)" \
    || { fail netif-destroy "$STEP_ERROR; back end log: $(be_tail 2)"; return 1; }
  step n1 "gone from xl list" "$Q_GONE" domain_gone "$d1" \
    || { fail netif-destroy "$STEP_ERROR; domain $d1 is still listed after xl destroy (its ring grants still mapped?): $(xl list | tr '\n' ' ')"; return 1; }
  kill -0 "$BE_PID" 2>/dev/null || { fail netif-destroy "the back end died"; return 1; }
  pass netif-destroy "domain $d1 detached ($(grep -o "vif $d1/0 [^\"]*" "$BE_LOG" | tail -1)) and gone from xl list"
}

# ---- 6 vhostnet
# The NIC is a TAP whose frames move through vhost-net rings (issue 12's
# exceptional path). vm3 runs xsw-front in tap mode with 10.77.0.2; dom0
# assigns its device to network VNET_VLAN, which the uplink carries untagged
# (--native-vlan), so dom0's xswnic0 (10.77.0.1) and vm3's TAP share a plain
# Ethernet segment through the switch.
MAC3=00:00:00:00:00:33
VNET_NIC=xswnic0
VNET_VLAN=77
VNET_DOM0_IP=10.77.0.1
VNET_GUEST_IP=10.77.0.2
VNET_PINGS=3
Q_TAPUP=5                 # vm3's init brings its TAP up once xsw-front made it
Q_PING=$(( VNET_PINGS + 4 ))   # ARP, then one echo a second
# nic_counters: "rx tx" of the NIC from the back end's last JSON stats line
nic_counters() {
  local line re='"nic":\{"rx":([0-9]+),"tx":([0-9]+)'
  line=$(tail -n 1 "/tmp/backend-$BACKENDS-stats.log" 2>/dev/null)
  [[ $line =~ $re ]] && echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
}
scenario_vhostnet() {
  local id ping_pid got counters worker= f comm
  # The guests of the netif scenario leave: the memory is for vm3.
  xl destroy pmd > /dev/null 2>&1; xl destroy n2 > /dev/null 2>&1; xl destroy n1 > /dev/null 2>&1
  modprobe tun && modprobe vhost_net || { fail vhostnet "modprobe vhost_net failed: this dom0 kernel has no vhost_net module"; return; }
  [ -e /dev/vhost-net ] || { fail vhostnet "vhost_net is loaded but /dev/vhost-net did not appear"; return; }
  start_backend -p "vhost-net:$VNET_NIC" --native-vlan "$VNET_VLAN"
  STEP_PROGRESS=be_cpu step "back end $BACKENDS" "watching /local/domain" "$Q_BACKEND" be_says 'watching /local/domain' \
    || { fail vhostnet "$STEP_ERROR; back end log: $(be_tail 3)"; return; }
  be_says "NIC port vhost-net:$VNET_NIC" || { fail vhostnet "the back end did not open -p vhost-net:$VNET_NIC: $(be_tail 3)"; return; }
  create_guest vm3 "--mac,$MAC3,--tap,xsw0,--nb-mbuf,1024" "xsw_wait=1 xsw_tap_addr=xsw0=$VNET_GUEST_IP/24" \
    || { fail vhostnet "$STEP_ERROR"; return; }
  booted vm3 || { guest_failed vhostnet vm3; return; }
  id=$(domid vm3)
  xenstore-write "/local/domain/0/backend/xsw/$id/0/mac" "$MAC3" "/local/domain/0/backend/xsw/$id/0/vlan" "$VNET_VLAN"
  xenstore-write "/local/domain/$id/data/xsw-go" 1
  front_running vm3 || { guest_failed vhostnet vm3; return; }
  attached vm3 "$MAC3" || { fail vhostnet "$STEP_ERROR; back end log: $(be_tail 2)"; return; }
  STEP_PROGRESS="dom_cpu vm3" step vm3 "TAP up with $VNET_GUEST_IP" "$Q_TAPUP" guest_says vm3 XSW-TAP-UP \
    || { guest_failed vhostnet vm3; return; }
  busybox ip addr add "$VNET_DOM0_IP/24" dev "$VNET_NIC" && busybox ip link set "$VNET_NIC" up \
    || { fail vhostnet "cannot address dom0's $VNET_NIC"; return; }
  full_budget "$Q_PING"
  busybox ping -c "$VNET_PINGS" -w "$FULL" "$VNET_GUEST_IP" > /tmp/ping-vhostnet.log 2>&1 &
  ping_pid=$!
  step dom0 "pinged $VNET_GUEST_IP $VNET_PINGS times" "$Q_PING" proc_gone "$ping_pid"
  wait "$ping_pid"
  got=$(grep -o '[0-9]* packets received' /tmp/ping-vhostnet.log | cut -d' ' -f1)
  if [ "${got:-0}" -lt 1 ]; then
    fail vhostnet "no echo reply from vm3 through -p vhost-net:$VNET_NIC: $(tr '\n' ' ' < /tmp/ping-vhostnet.log); NIC $(nic_counters); vm3: $(console_tail vm3)"
    return
  fi
  # The stats line after the ping shows the NIC's counters.
  step "back end $BACKENDS" "printed its stats" 3 file_has "/tmp/backend-$BACKENDS-stats.log" '"nic":\{"rx":[1-9]'
  counters=$(nic_counters)
  [[ $counters =~ ^[1-9][0-9]*\ [1-9][0-9]*$ ]] || { fail vhostnet "the NIC counters did not move (rx tx: ${counters:-none})"; return; }
  # The kernel's vhost worker of the back end's process (vhost-<pid>): a
  # kernel thread in Linux 6.1, a thread of the process itself from 6.4.
  for f in /proc/[0-9]*/comm "/proc/$BE_PID"/task/*/comm; do
    { read -r comm < "$f"; } 2>/dev/null && [ "$comm" = "vhost-$BE_PID" ] && { worker=$comm; break; }
  done
  [ -n "$worker" ] || { fail vhostnet "no vhost-$BE_PID kernel worker: the NIC did not go through vhost-net"; return; }
  pass vhostnet "dom0 pinged vm3's TAP ($VNET_GUEST_IP) through -p vhost-net:$VNET_NIC: $got of $VNET_PINGS replies; NIC rx tx $counters; kernel worker $worker"
}

scenario_attach
if grep -q '^PASS attach' "$OUT/results"; then
  scenario_traffic
  scenario_restart
  scenario_destroy
else
  for s in traffic restart destroy; do fail "$s" "skipped: the guests did not attach"; done
fi
if ! scenario_netif; then
  for s in netif-attach netif-ping netif-iperf3 netif-restart netif-detach netif-destroy; do
    grep -q "^[A-Z]* $s:" "$OUT/results" || fail "$s" "skipped: an earlier netif step failed"
  done
fi
# SIGTERM must end the back end promptly (it detaches and unmaps everything first).
kill -TERM "$BE_PID" 2>/dev/null
if ! step "back end" "exited on SIGTERM" "$Q_EXIT" be_gone; then
  say "killing the back end"; kill -KILL "$BE_PID"
fi
scenario_vhostnet
kill -TERM "$BE_PID" 2>/dev/null
if ! step "back end $BACKENDS" "exited on SIGTERM" "$Q_EXIT" be_gone; then
  say "killing the back end"; kill -KILL "$BE_PID"
fi
[ "$(time_left)" -gt 0 ] && xl list
say "done in $(( $(now) - ${t0%.*} )) s"
