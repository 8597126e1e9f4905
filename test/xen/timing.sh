# Sourced by dom0's scenario script: every wait of test:xen, scaled by how fast
# the emulated machine is (docs/xen.md, "Timeouts").
#
#   calibrate             measures SPEED once dom0 is up
#   step WHO WHAT QUIET CMD...
#                         polls CMD until it succeeds, within QUIET x MARGIN x SPEED + SLACK
#   file_has FILE REGEX   a line of FILE matches, checked without forking
#   console_tail NAME     a guest's last console lines, on one line
#
# SPEED is how many times slower this run's emulated machine is than the
# reference machine (2 cores, quiet, QEMU 7.2 TCG), never below 1. QUIET values
# are what a step takes there. Every step's time and budget go to $OUT/timings.

# The reference figures (seconds), measured on the quiet reference machine.
CAL_QUIET=2        # calibrate's workload: one node start-up in dom0
BOOT_QUIET=20      # dom0's kernel up to "dom0 ready" (its uptime then)
MARGIN=3           # a budget is QUIET x MARGIN x SPEED, plus SLACK
SLACK=10
POLL=2             # seconds between checks
TIMINGS=$OUT/timings
# A program started in dom0 costs up to seconds of an emulated CPU on a loaded
# machine, so the waiting below uses bash builtins and integer arithmetic only
# (SPEED is kept in hundredths, SPEED_C): the clock is read with `read`, and
# POLL_FD is a FIFO nobody writes to, so `read -t` on it sleeps. (Not a
# process substitution: dom0 has no /dev/fd.) Without the FIFO, pause runs sleep.
SPEED_C=100
SPEED=1.00
POLL_FIFO=/run/xsw-poll.fifo
if mkfifo "$POLL_FIFO" 2> /dev/null && exec {POLL_FD}<> "$POLL_FIFO"; then
  pause() { read -rt "$1" -u "$POLL_FD" _ || :; }
else
  echo "timing.sh: cannot open the FIFO $POLL_FIFO; polling with sleep" >&2
  pause() { sleep "$1"; }
fi
uptime_s() { local u _; read -r u _ < /proc/uptime; echo "$u"; }
# tick: NOW := dom0's uptime in whole seconds (the clock of every step),
# NOW_C in hundredths
tick() { local u _; read -r u _ < /proc/uptime; NOW=${u%.*}; NOW_C=$(( 10#${u/./} )); }
now() { tick; echo "$NOW"; }
set_speed() { SPEED_C=$(( $1 < 100 ? 100 : $1 )); printf -v SPEED '%d.%02d' $(( SPEED_C / 100 )) $(( SPEED_C % 100 )); }

# The scenarios end RESERVE seconds before the host's XSW_XEN_TIMEOUT (time to
# write the results, copy the logs and power off, at a few seconds per command
# on a starved machine). dom0's uptime started LAG seconds after QEMU
# (Xen's boot, the dom0 builder); dom0's wall clock, QEMU's RTC set from the
# host's, measures that against the host's XSW_XEN_STARTED. A clock that
# disagrees by more than the timeout counts as no lag.
RESERVE=60
tick
printf -v CLOCK_LAG '%(%s)T' -1
CLOCK_LAG=$(( CLOCK_LAG - NOW - ${XSW_XEN_STARTED:-0} ))
LAG=$CLOCK_LAG
{ [ "$LAG" -ge 0 ] && [ "$LAG" -le "${XSW_XEN_TIMEOUT:-1800}" ]; } || LAG=0
DEADLINE=$(( ${XSW_XEN_TIMEOUT:-1800} - LAG - RESERVE ))
note() { local u _; read -r u _ < /proc/uptime; echo "$*" >> "$TIMINGS"; echo "[timing $u] $*"; }
time_left() { tick; echo $(( DEADLINE - NOW )); }

# full_budget QUIET: FULL := seconds allowed for a step that takes QUIET on
# the reference machine
full_budget() { FULL=$(( ($1 * MARGIN * SPEED_C + 99) / 100 + SLACK )); }
# step_end FROM QUIET: END := FROM + the full budget, but not after DEADLINE
step_end() { full_budget "$2"; END=$(( $1 + FULL < DEADLINE ? $1 + FULL : DEADLINE )); }

# calibrate: SPEED = the larger of (dom0's boot time / BOOT_QUIET) and (one
# node start-up / CAL_QUIET), at least 1. Node's start-up is the workload
# that dominates the scenarios (the back end and both guests run node); the
# steps after it correct SPEED upwards when they are slower.
calibrate() {
  local booted=${XSW_DOM0_READY:-0} t0 cal boot_c
  tick; t0=$NOW_C
  node -e "require('/opt/xsw/dist/xenstore/client')" || return 1
  tick; cal=$(( NOW_C - t0 ))
  boot_c=$(( 10#${booted/./} ))
  [[ $booted == *.* ]] || boot_c=$(( booted * 100 ))
  set_speed $(( cal / CAL_QUIET > boot_c / BOOT_QUIET ? cal / CAL_QUIET : boot_c / BOOT_QUIET ))
  note "calibration: node start-up in $(( cal / 100 )).$(( cal / 10 % 10 )) s (quiet $CAL_QUIET s), dom0 booted in ${booted%.*} s (quiet $BOOT_QUIET s) $LAG s after QEMU started (clock: $CLOCK_LAG s): speed factor $SPEED; $(time_left) s left of XSW_XEN_TIMEOUT"
}

# step WHO WHAT QUIET CMD...: polls CMD every POLL seconds. Times count from
# STEP_FROM (dom0 uptime, whole seconds) when set, else from now: a guest that
# boots while another is waited for is timed from its creation.
# STEP_PROGRESS, when set, is a command printing a counter that grows while the
# step's actor runs (a domain's CPU time, frames received): a step that ran out
# of budget while its counter grew was merely slow and gets its budget once
# more (re-checking CMD is idempotent); a stalled one fails at once.
# A step that took longer than SPEED predicts raises SPEED for the steps after
# it: the machine got slower during the run. On failure STEP_ERROR says which
# step, its budget and how that was derived.
STEP_ERROR=
step() {
  local who=$1 what=$2 quiet=$3; shift 3
  local from=${STEP_FROM:-} probe=${STEP_PROGRESS:-} b end took mark= again= extended= why waited=
  STEP_FROM= STEP_PROGRESS=
  tick
  [ -n "$from" ] || from=$NOW
  step_end "$from" "$quiet"; end=$END; b=$(( end - from ))
  echo "$who: $what (budget $b s from dom0 uptime $from)" > "$OUT/current"
  until "$@"; do
    # The counter's first reading once the step has to wait (it costs
    # programs); the deadline counts after one pause, so a step timed from
    # earlier whose budget is gone already gets a look at its progress.
    [ -n "$probe" ] && [ -z "$waited" ] && mark=$(eval "$probe" 2>/dev/null)
    tick
    if [ -n "$waited" ] && [ "$NOW" -ge "$end" ]; then
      [ -n "$probe" ] && again=$(eval "$probe" 2>/dev/null)
      if [ -z "$extended" ] && [ -n "$again" ] && [ "$again" != "$mark" ] && [ $(( DEADLINE - NOW )) -gt 0 ]; then
        extended=1
        note "$who: $what: slow, not within $b s but progressing ($mark -> $again): waiting once more"
        step_end "$NOW" "$quiet"; end=$END
        continue
      fi
      full_budget "$quiet"
      why="calibrated budget: quiet $quiet s x $MARGIN x speed $SPEED + $SLACK s = $FULL s"
      [ "$b" -lt "$FULL" ] && why+=", cut to the time left of XSW_XEN_TIMEOUT"
      if [ -n "$extended" ]; then why+="; waited twice, it was progressing"
      elif [ -n "$probe" ]; then why+="; not progressing (${mark:-none} -> ${again:-none})"
      fi
      STEP_ERROR="$who: $what: timed out after $(( NOW - from )) s ($why)"
      note "FAILED $STEP_ERROR"
      : > "$OUT/current"
      return 1
    fi
    pause "$POLL"
    waited=1
  done
  : > "$OUT/current"
  tick
  took=$(( NOW - from ))
  # Done at the first check of a step timed from earlier: it finished some
  # time while an earlier step was waited for, so its time says nothing.
  if [ -z "$waited" ] && [ "$took" -gt "$POLL" ]; then
    note "$who: $what: done when first checked, $took s after it began (budget $b s)"
    return 0
  fi
  note "$who: $what in $took s (budget $b s${extended:+, extended once})"
  if [ "$quiet" -ge 5 ] && [ $(( took * 100 / quiet )) -gt "$SPEED_C" ]; then
    set_speed $(( took * 100 / quiet ))
    note "speed factor raised to $SPEED ($who: $what took $took s, quiet $quiet s)"
  fi
  return 0
}

# file_has FILE REGEX: a line of FILE matches REGEX (bash's =~, extended);
# FH_LINE is then that line. Each (file, regex) pair keeps its own descriptor
# and reads on from where it stopped; a match is remembered. No program is
# started.
declare -A FH_FD FH_HIT FH_PART
FH_LINE=
file_has() {
  local key="$1|$2" fd line
  [ -n "${FH_HIT[$key]:-}" ] && { FH_LINE=${FH_HIT[$key]}; return 0; }
  fd=${FH_FD[$key]:-}
  if [ -z "$fd" ]; then
    [ -r "$1" ] || return 1
    exec {fd}< "$1"
    FH_FD[$key]=$fd
  fi
  while IFS= read -r -u "$fd" line; do
    line="${FH_PART[$key]:-}$line"
    FH_PART[$key]=
    if [[ $line =~ $2 ]]; then
      FH_HIT[$key]=$line
      FH_LINE=$line
      exec {fd}<&-
      return 0
    fi
  done
  FH_PART[$key]+=$line   # a last line without its newline yet
  return 1
}

# console_tail NAME [LINES]: a guest's last console lines without its JSON
# stats lines, control characters dropped, joined with " | "
console_tail() {
  local f=/var/log/xen/guest-$1.log
  [ -s "$f" ] || { echo "(no console output yet)"; return; }
  grep -av '"devices"' "$f" | tr -d '\r' | tr -cd '[:print:]\n' | grep -v '^ *$' | tail -"${2:-6}" | paste -sd'|' - | sed 's/|/ | /g'
}
