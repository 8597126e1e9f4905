#!/usr/bin/env bash
# Runs the recipes of docs/multihost.md as written (root): for each recipe,
# two network namespaces stand in for hosts A and B, a veth pair for the cable
# (or underlay) between their eth1s, and the simulated platform for Xen (one
# per host). Each host runs the recipe's block (extracted from the doc) in its
# namespace, then the guest blocks run: host A's vm1 (network 10) sends 200
# test frames to host B's vm1, which returns them; host B's vm2 (network 20)
# must receive none. Prints one line per recipe; exits non-zero if any fails.
#   scripts/multihost-recipes.sh [bridge|vxlan|ovs]...
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
doc=$root/docs/multihost.md
[ "$(id -u)" = 0 ] || { echo "multihost-recipes.sh needs root (network namespaces): run it with sudo." >&2; exit 2; }
[ -f "$root/dist/backend/cli.js" ] || { echo "dist/ is missing: run npm install first." >&2; exit 2; }

work=$(mktemp -d /tmp/xsw-recipes.XXXXXX)
mkdir "$work/bin"
for c in backend:backend/cli.js front:frontend/cli.js sim:xenstore/sim/cli.js; do
  printf '#!/bin/sh\nexec node %s "$@"\n' "$root/dist/${c#*:}" > "$work/bin/xsw-${c%%:*}"
  chmod +x "$work/bin/xsw-${c%%:*}"
done
export PATH=$work/bin:$PATH

# The shell block that follows "<!-- recipe NAME -->" in the doc.
block() {
  awk -v name="$1" '$0 == "<!-- recipe " name " -->" {found = 1; next}
    found && /^```sh$/ {inside = 1; next}
    inside && /^```$/ {exit}
    inside {print}' "$doc"
}

# The last JSON stats line of a guest with this MAC in a file: "rx_packets rx_bad".
rx_of() {
  node -e '
    const [file, mac] = process.argv.slice(1);
    let last = "missing";
    for (const l of require("fs").readFileSync(file, "utf8").split("\n")) {
      try { const d = JSON.parse(l).devices.find((x) => x.mac === mac); if (d) last = `${d.rx_packets} ${d.rx_bad}`; } catch {}
    }
    console.log(last);' "$1" "$2"
}

hosts=(a b)
cleanup_recipe() {
  local name=$1 h pid
  for h in "${hosts[@]}"; do
    for pid in $(ip netns pids "xswr-$h" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    if [ -f "$work/$name-$h/ovs/ovsdb-server.pid" ]; then kill "$(cat "$work/$name-$h/ovs/ovsdb-server.pid")" 2>/dev/null || true; fi
    XSW_SIM_DIR=$work/$name-$h/sim xsw-sim down >/dev/null 2>&1 || true
  done
  sleep 0.5
  for h in "${hosts[@]}"; do ip netns del "xswr-$h" 2>/dev/null || true; done
}

# Starts a private ovsdb-server (outside) and ovs-vswitchd (in the host's namespace).
start_ovs() {
  local h=$1 dir=$2
  command -v ovs-vswitchd >/dev/null || { echo "Open vSwitch is not installed: apt-get install openvswitch-switch" >&2; return 1; }
  mkdir -p "$dir"
  export OVS_RUNDIR=$dir OVS_DBDIR=$dir OVS_LOGDIR=$dir OVS_SYSCONFDIR=$dir
  ovsdb-tool create "$dir/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  ovsdb-server "$dir/conf.db" --remote="punix:$dir/db.sock" --pidfile="$dir/ovsdb-server.pid" --detach --log-file="$dir/ovsdb-server.log" -vconsole:off
  ovs-vsctl --db="unix:$dir/db.sock" --no-wait init
  ip netns exec "xswr-$h" ovs-vswitchd "unix:$dir/db.sock" --pidfile="$dir/ovs-vswitchd.pid" --detach --log-file="$dir/ovs-vswitchd.log" -vconsole:off
}

run_recipe() {
  local name=$1 h note=""
  local script
  script=$(block "$name")
  [ -n "$script" ] || { echo "no recipe '$name' in $doc" >&2; return 1; }
  for h in "${hosts[@]}"; do
    ip netns add "xswr-$h"
    ip netns exec "xswr-$h" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    mkdir -p "$work/$name-$h"
  done
  ip link add eth1 netns xswr-a type veth peer name eth1 netns xswr-b
  if [ "$name" = bridge ] && ! ip -n xswr-a link add probe0 type bridge vlan_filtering 1 2>/dev/null; then
    note=" (this kernel has no bridge VLAN filtering: ran the documented variant without it)"
    script=$(printf '%s\n' "$script" | sed -e 's/ vlan_filtering 1//' -e 's/^\( *\)bridge vlan add .*/\1: # no VLAN filtering/')
  fi
  ip -n xswr-a link del probe0 2>/dev/null || true
  declare -A local_addr=([a]=192.168.78.1 [b]=192.168.78.2) remote_addr=([a]=192.168.78.2 [b]=192.168.78.1)
  for h in "${hosts[@]}"; do
    local dir=$work/$name-$h
    local simenv ovsopts=""
    simenv=$(XSW_SIM_DIR=$dir/sim xsw-sim up)
    if [ "$name" = ovs ]; then
      (start_ovs "$h" "$dir/ovs") || return 1
      [ -d /sys/module/openvswitch ] || ovsopts="-- set bridge br0 datapath_type=netdev"
    fi
    (cd "$dir" && ip netns exec "xswr-$h" env SIMENV="$simenv" NIC=eth1 LOCAL="${local_addr[$h]}" REMOTE="${remote_addr[$h]}" \
      OVS_RUNDIR="$dir/ovs" OVS_DBDIR="$dir/ovs" OVS_LOGDIR="$dir/ovs" OVS_BRIDGE_OPTS="$ovsopts" \
      bash -euo pipefail -c "eval \"\$SIMENV\"; $script")
    for _ in $(seq 100); do grep -q watching "$dir/xsw-backend.log" 2>/dev/null && break; sleep 0.1; done
    grep -q watching "$dir/xsw-backend.log" || { echo "$name: host $h's xsw-backend did not start:" >&2; tail -5 "$dir/xsw-backend.log" >&2; return 1; }
    eval "sim_$h=\$simenv"
  done
  (cd "$work/$name-b" && env SIMENV="$sim_b" bash -euo pipefail -c "eval \"\$SIMENV\"; $(block guests-b)" > guests.out 2>&1) &
  local guests_b=$!
  sleep 2
  (cd "$work/$name-a" && env SIMENV="$sim_a" bash -euo pipefail -c "eval \"\$SIMENV\"; $(block guests-a)" > guests.out 2>&1)
  wait "$guests_b"
  local a1 b2
  a1=$(rx_of "$work/$name-a/guests.out" 02:00:00:00:0a:01)
  b2=$(rx_of "$work/$name-b/guests.out" 02:00:00:00:0b:02)
  if [ "$a1" = "200 0" ] && [ "$b2" = "0 0" ]; then
    echo "recipe $name: ok: host A's vm1 got its 200 frames back intact from host B's vm1, host B's vm2 (network 20) got none$note"
  else
    echo "recipe $name: FAILED: host A's vm1 rx/bad '$a1' (want '200 0'), host B's vm2 rx/bad '$b2' (want '0 0')$note"
    return 1
  fi
}

status=0
for name in "${@:-bridge vxlan ovs}"; do
  for n in $name; do
    run_recipe "$n" || status=1
    cleanup_recipe "$n"
  done
done
rm -rf "$work"
exit $status
