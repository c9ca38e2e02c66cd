#!/usr/bin/env bash
# A one-node Ceph cluster with an S3 gateway on loopback, for the S3 tests and the benchmark.
#
#   scripts/rgw.sh start  [DIR]          start (or restart on DIR's state); prints the env file
#   scripts/rgw.sh stop   [--purge] [DIR] stop every process of this cluster; --purge removes DIR
#   scripts/rgw.sh status [DIR]          exit 0 and print the endpoint when the gateway answers
#
# DIR (default .rgw/ in the repo, which is gitignored) holds everything: ceph.conf, the monitor's
# store, the OSD (BlueStore on a sparse file, so data survives a restart and a 6 GiB blob does not
# live in RAM), logs, pid files and sockets, and DIR/env, which scripts and tests read:
#   RGW_ENDPOINT=http://127.0.0.1:<port>  RGW_ACCESS_KEY=…  RGW_SECRET_KEY=…  RGW_REGION=us-east-1
# The cluster: one monitor, one OSD, pool size 1, no cephx between daemons, no ceph-mgr (S3 does
# not need it), radosgw with the beast frontend on 127.0.0.1. Needs root and Debian's radosgw,
# ceph-mon and ceph-osd (Ceph 16.2 on bookworm); nothing is read from /etc/ceph or /var/lib/ceph.
#
# Ports: RGW_PORT and RGW_MON_PORT choose them; otherwise free ones are picked at the first start
# and kept in DIR/ports (the monitor's address is in its map, so a restart must reuse it). Two
# clusters in two DIRs run side by side. RGW_OWNER_PID=<pid> makes a watchdog stop and purge the
# cluster when that process is gone (a test runner killed with SIGKILL leaves nothing running).
# RGW_START_TIMEOUT (seconds, default 90) bounds a start.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$REPO/scripts/rgw.sh"

NAME=rgw.sh
DEFAULT_DIR="$REPO/.rgw"
# shellcheck source=scripts/cluster-common.sh
. "$REPO/scripts/cluster-common.sh"
CONF="$DIR/ceph.conf"
export CEPH_CONF="$CONF"

# Processes of this cluster: every daemon and tool is started with `-c $CONF`, so its command line
# names this DIR's config; nothing else on the machine does. Fixed-string match, no pattern.
cluster_pids() {
  local p cmd
  for p in /proc/[0-9]*; do
    cmd="$({ tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null)" || continue
    case "$cmd" in *" -c $CONF "*) echo "${p#/proc/}" ;; esac
  done
}

# The pid in a pid file, if that process is alive and is one of this cluster's.
live_pid() {
  local f="$DIR/run/$1.pid" pid
  [ -s "$f" ] || return 1
  pid="$(cat "$f")"
  [ -r "/proc/$pid/cmdline" ] || return 1
  case "$({ tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null)" in *" -c $CONF "*) echo "$pid" ;; *) return 1 ;; esac
}

# One HTTP GET / to the gateway through bash's /dev/tcp (no curl needed); true on any HTTP answer.
answers() {
  local port="$1" line
  line="$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && head -c 12 <&3" 2>/dev/null)" || return 1
  case "$line" in HTTP/1.?\ [0-9]*) return 0 ;; *) return 1 ;; esac
}

print_env() { cat "$DIR/env"; }

do_status() {
  if [ ! -s "$DIR/env" ] || [ ! -s "$DIR/ports" ]; then echo "stopped (no cluster in $DIR)"; exit 3; fi
  # shellcheck disable=SC1091
  . "$DIR/ports"
  if answers "$RGW_PORT"; then
    echo "running $(grep '^RGW_ENDPOINT=' "$DIR/env" | cut -d= -f2-) (state in $DIR)"
    exit 0
  fi
  echo "not answering on 127.0.0.1:$RGW_PORT (state in $DIR)"
  exit 3
}

do_stop() {
  local pid name deadline
  stop_watchdog_on_purge
  # The gateway, then the OSD, then the monitor: each on SIGTERM shuts down in well under a second.
  for name in radosgw osd.0 mon.a; do
    if pid="$(live_pid "$name")"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  # Then anything else of this cluster (a tool or a daemon that never wrote its pid file).
  deadline=$((SECONDS + 15))
  while [ -n "$(cluster_pids)" ] && [ "$SECONDS" -lt "$deadline" ]; do
    for pid in $(cluster_pids); do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.2
  done
  for pid in $(cluster_pids); do log "killing $pid (did not stop on SIGTERM)"; kill -KILL "$pid" 2>/dev/null || true; done
  if [ "$PURGE" = 1 ]; then
    # Only a directory this script made: never rm -rf a path that merely was given.
    if [ -f "$DIR/.wharf-rgw" ]; then rm -rf "$DIR"; else log "not removing $DIR: no .wharf-rgw marker"; fi
  fi
}

write_conf() {
  cat > "$CONF" <<EOF
# Written by scripts/rgw.sh: a throwaway one-node cluster for tests. Not for production.
[global]
fsid = $FSID
mon initial members = a
mon host = [v2:127.0.0.1:$RGW_MON_PORT]
public addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
# radosgw asks for a "secure" connection to the monitor, which auth none cannot give: crc.
ms mon client mode = crc
# Fail a start instead of waiting 5 minutes for a monitor that is not there.
client mount timeout = $TIMEOUT
keyring = $DIR/keyring
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
crash dir = $DIR/crash
log to stderr = false
err to stderr = true
# One OSD: every pool has one copy, few placement groups, and no ceph-mgr autoscaling them.
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
# The monitor batches map changes for 1 s by default; radosgw's first start creates its pools one
# after the other, each waiting for a new map: without this, a cold start takes twice as long.
paxos propose interval = 0.01
paxos min wait = 0.001

[mon]
mon data = $DIR/mon/\$id
mon cluster log file = $DIR/log/cluster.log

[osd]
osd data = $DIR/osd/\$id
osd objectstore = bluestore
bluestore block path = $DIR/osd/block
bluestore block create = true
# Sparse: takes disk only as data is written.
bluestore block size = 68719476736
bluestore fsck on mount = false
bluestore fsck on mkfs = false
osd memory target = 2147483648

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw data = $DIR/rgw
rgw init timeout = $TIMEOUT
EOF
}

# The gateway answers, and it is ours: a radosgw that could not bind its port exits, and whatever
# holds the port must not pass for it. A pid file of a process that is gone fails the start at once.
rgw_ready() {
  live_pid radosgw >/dev/null || { show_logs; die "radosgw exited (is 127.0.0.1:$RGW_PORT taken?)"; }
  answers "$RGW_PORT"
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local limit="$1" what="$2"; shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || { show_logs; die "timed out waiting for $what"; }
    sleep 0.1
  done
}

show_logs() {
  local f
  for f in "$DIR"/log/*.log; do [ -f "$f" ] && { log "--- tail of $f"; tail -n 15 "$f" >&2; }; done
}

# A daemon forks into the background: it must not keep the start lock (fd 9) nor the caller's
# pipes, or the lock is never released and a caller reading our output never sees it end.
launch() { "$@" </dev/null >>"$DIR/log/start.log" 2>&1 9>&-; }

start_daemons() {
  local pid
  if ! live_pid mon.a >/dev/null; then
    launch ceph-mon -c "$CONF" -i a || { show_logs; die "ceph-mon did not start"; }
  fi
  if ! live_pid osd.0 >/dev/null; then
    launch ceph-osd -c "$CONF" -i 0 || { show_logs; die "ceph-osd did not start"; }
  fi
  if ! live_pid radosgw >/dev/null; then
    # In the foreground of a process of its own, so that its pid is known from the start: a
    # daemonized radosgw that cannot bind its port exits and removes its pid file, and the wait
    # below could not tell that from one still starting.
    setsid radosgw -f -c "$CONF" -n client.rgw </dev/null >>"$DIR/log/start.log" 2>&1 9>&- &
    echo $! > "$DIR/run/radosgw.pid"
  fi
  wait_for "$TIMEOUT" "radosgw to answer on 127.0.0.1:$RGW_PORT" rgw_ready
  for pid in mon.a osd.0 radosgw; do live_pid "$pid" >/dev/null || { show_logs; die "$pid exited"; }; done
}

do_start() {
  TIMEOUT="${RGW_START_TIMEOUT:-90}"
  [ "$(id -u)" -eq 0 ] || die "must run as root, as CI does (the only way this cluster is tested)"
  local bin
  for bin in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool; do
    command -v "$bin" >/dev/null || die "$bin is not installed: apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd"
  done
  touch "$DIR/.wharf-rgw"
  # One start at a time per DIR; a second caller waits, then finds it running and reprints.
  exec 9>"$DIR/.lock"
  flock 9
  # A start that fails leaves nothing running (its logs stay in DIR/log).
  trap 'if [ "$?" -ne 0 ]; then PURGE=0 do_stop; fi' EXIT

  if [ -s "$DIR/env" ] && [ -s "$DIR/ports" ]; then
    # shellcheck disable=SC1091
    . "$DIR/ports"
    if answers "$RGW_PORT" && live_pid radosgw >/dev/null; then print_env; return; fi
    # State from an earlier start: restart the missing daemons on it.
    start_daemons
  else
    # Cold start. Anything left by an interrupted first start goes.
    PURGE=0 do_stop
    rm -rf "$DIR"/{mon,osd,run,log,crash,rgw,env,ports,ceph.conf,monmap,keyring}
    mkdir -p "$DIR"/{mon/a,osd/0,run,log,crash,rgw}
    RGW_PORT="${RGW_PORT:-$(free_port)}"
    RGW_MON_PORT="${RGW_MON_PORT:-$(free_port)}"
    [ "$RGW_PORT" != "$RGW_MON_PORT" ] || RGW_MON_PORT="$(free_port)"
    FSID="$(cat /proc/sys/kernel/random/uuid)"
    write_conf
    : > "$DIR/keyring"
    monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$RGW_MON_PORT]" "$DIR/monmap" >/dev/null
    ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" >"$DIR/log/mkfs.log" 2>&1 || { cat "$DIR/log/mkfs.log" >&2; die "ceph-mon --mkfs failed"; }
    launch ceph-mon -c "$CONF" -i a || { show_logs; die "ceph-mon did not start"; }
    local osd_uuid id
    osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
    id="$(ceph -c "$CONF" --connect-timeout "$TIMEOUT" osd create "$osd_uuid" 2>>"$DIR/log/mkfs.log")" || { show_logs; die "ceph osd create failed"; }
    [ "$id" = 0 ] || die "expected OSD id 0, got '$id'"
    ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$DIR/log/mkfs.log" 2>&1 || { cat "$DIR/log/mkfs.log" >&2; die "ceph-osd --mkfs failed"; }
    start_daemons
    local access secret
    access="$(rand 'A-Z0-9' 20)"
    secret="$(rand 'A-Za-z0-9' 40)"
    radosgw-admin -c "$CONF" user create --uid=wharf --display-name=wharf \
      --access-key="$access" --secret-key="$secret" >>"$DIR/log/mkfs.log" 2>&1 || { cat "$DIR/log/mkfs.log" >&2; die "radosgw-admin user create failed"; }
    printf 'RGW_PORT=%s\nRGW_MON_PORT=%s\n' "$RGW_PORT" "$RGW_MON_PORT" > "$DIR/ports"
    # Written last, by rename: a reader that sees DIR/env sees a whole one on a ready cluster.
    printf 'RGW_ENDPOINT=http://127.0.0.1:%s\nRGW_ACCESS_KEY=%s\nRGW_SECRET_KEY=%s\nRGW_REGION=us-east-1\nRGW_DIR=%s\n' \
      "$RGW_PORT" "$access" "$secret" "$DIR" > "$DIR/env.tmp"
    mv "$DIR/env.tmp" "$DIR/env"
  fi

  if [ -n "${RGW_OWNER_PID:-}" ] && ! { pid="$(cat "$DIR/run/watchdog.pid" 2>/dev/null)" && kill -0 "$pid" 2>/dev/null; }; then
    # setsid + closed descriptors: the watchdog must not hold the caller's pipes open.
    setsid "$SELF" __watch "$DIR" "$RGW_OWNER_PID" </dev/null >/dev/null 2>&1 9>&- &
    echo $! > "$DIR/run/watchdog.pid"
  fi
  print_env
}

case "$CMD" in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  __watch) do_watch "$DIR" "${2:-}" ;;
esac
