# Sourced by scripts/rgw.sh and scripts/pg.sh: what every throwaway test cluster script shares.
# Before sourcing, the script sets NAME (for messages), SELF (its own path) and DEFAULT_DIR; this
# parses `start|stop [--purge]|status|__watch [DIR]` into CMD, PURGE and DIR (made absolute; a
# stop or status of a DIR that does not exist ends here).
# shellcheck shell=bash

usage() { echo "usage: $SELF start|stop [--purge]|status [DIR]" >&2; exit 2; }
log() { echo "$NAME: $*" >&2; }
die() { log "$*"; exit 1; }

CMD="${1:-}"; shift || true
PURGE=0
if [ "$CMD" = stop ] && [ "${1:-}" = --purge ]; then PURGE=1; shift; fi
case "$CMD" in start|stop|status|__watch) ;; *) usage ;; esac
DIR="${1:-$DEFAULT_DIR}"
if [ "$CMD" = start ]; then mkdir -p "$DIR"; fi
if [ ! -d "$DIR" ]; then
  [ "$CMD" = status ] && { echo "stopped (no cluster in $DIR)"; exit 3; }
  exit 0 # stop: nothing to stop
fi
DIR="$(cd "$DIR" && pwd)"

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# `rand CHARSET N`: N random characters of CHARSET (passwords, keys).
rand() { tr -dc "$1" < /dev/urandom | head -c "$2" || true; }

# The watchdog goes with the state (unless this is the watchdog, which execs into the stop); a
# plain stop keeps it, so that a cluster stopped for a while still goes when its owner does.
stop_watchdog_on_purge() {
  local pid
  if [ "$PURGE" = 1 ] && pid="$(cat "$DIR/run/watchdog.pid" 2>/dev/null)" && [ "$pid" != "$$" ] &&
    grep -qF "__watch" "/proc/$pid/cmdline" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
  fi
}

# The owner's watchdog (`__watch DIR PID`): polls once a second; when the owner is gone, stop and purge.
do_watch() {
  local owner="$2"
  while kill -0 "$owner" 2>/dev/null; do sleep 1; done
  exec "$SELF" stop --purge "$DIR"
}
