#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster on loopback, for the tests of shared state (issue 22).
#
#   scripts/pg.sh start  [DIR]            start (or restart on DIR's state); prints the env file
#   scripts/pg.sh stop   [--purge] [DIR]  stop the cluster; --purge removes DIR
#   scripts/pg.sh status [DIR]            exit 0 and print the URL when the server accepts connections
#
# DIR (default .pg/ in the repo, which is gitignored) holds everything: the data directory (data/),
# the Unix socket (run/), the server's log (log/), and DIR/env, which scripts and tests read:
#   PG_URL=postgres://wharf:<password>@127.0.0.1:<port>/wharf  PG_PORT=<port>  PG_DIR=DIR
# The role `wharf` is the cluster's superuser (tests create a database each and terminate
# backends); database `wharf` is made at the first start. TCP: 127.0.0.1 only, password
# (scram-sha-256); the Unix socket in DIR/run trusts local users and is for this script.
# fsync stays on: PostgreSQL is the durability store of the replicas, and a kill -9 test must see
# what a real one does. Needs Debian's postgresql 15 (/usr/lib/postgresql/15/bin, or PG_BINDIR).
# PostgreSQL refuses to run as root: as root, every server command runs as the `postgres` system
# user (runuser), and DIR is chowned to it.
#
# Port: PG_PORT chooses it; otherwise a free one is picked at the first start and kept in DIR/port.
# PG_OWNER_PID=<pid> makes a watchdog stop and purge the cluster when that process is gone.
# PG_START_TIMEOUT (seconds, default 30) bounds a start.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$REPO/scripts/pg.sh"
BIN="${PG_BINDIR:-/usr/lib/postgresql/15/bin}"

NAME=pg.sh
DEFAULT_DIR="$REPO/.pg"
# shellcheck source=scripts/cluster-common.sh
. "$REPO/scripts/cluster-common.sh"
DATA="$DIR/data"

# Server commands run as `postgres` when this script runs as root.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The postmaster's pid, if it is alive and is this cluster's (its command line names DATA).
postmaster_pid() {
  local pid
  pid="$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null)" || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  case "$({ tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null)" in *"-D $DATA "*) echo "$pid" ;; *) return 1 ;; esac
}

# Every process of this cluster: postgres works in its data directory, so the postmaster and all
# it forked have DATA as their working directory; backends rename themselves "postgres: …" and
# outlive a killed postmaster for a moment (reparented), and are found this way too. A zombie
# has no working directory: it is done and holds nothing.
cluster_pids() {
  local p
  while IFS= read -r p; do echo "${p#/proc/}"; done < <(find /proc -mindepth 2 -maxdepth 2 -name cwd -lname "$DATA" -printf '%h\n' 2>/dev/null)
}

ready() { "$BIN/pg_isready" -q -h "$DIR/run" -p "$PG_PORT" -d postgres -U wharf -t 1; }

do_status() {
  if [ ! -s "$DIR/env" ] || [ ! -s "$DIR/port" ]; then echo "stopped (no cluster in $DIR)"; exit 3; fi
  PG_PORT="$(cat "$DIR/port")"
  if ready && postmaster_pid >/dev/null; then
    echo "running on 127.0.0.1:$PG_PORT (state in $DIR)"
    exit 0
  fi
  echo "not answering on 127.0.0.1:$PG_PORT (state in $DIR)"
  exit 3
}

do_stop() {
  local pid deadline
  stop_watchdog_on_purge
  # Fast shutdown: open sessions are ended, their transactions rolled back; a checkpoint is written.
  if pid="$(postmaster_pid)"; then
    kill -INT "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 15))
    while [ -n "$(cluster_pids)" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.05; done
  fi
  for pid in $(cluster_pids); do log "killing $pid (did not stop on SIGINT)"; kill -KILL "$pid" 2>/dev/null || true; done
  if [ "$PURGE" = 1 ]; then
    if [ -f "$DIR/.wharf-pg" ]; then rm -rf "$DIR"; else log "not removing $DIR: no .wharf-pg marker"; fi
  fi
}

write_conf() {
  cat >> "$DATA/postgresql.conf" <<EOF

# Written by scripts/pg.sh: a throwaway cluster for tests. Not for production.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$DIR/run'
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = 200
shared_buffers = 32MB
dynamic_shared_memory_type = posix
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
}

# The server from DATA, in the background; waits until it accepts connections. A postmaster that
# cannot bind its port exits at once, which fails the wait at once.
launch() {
  # shellcheck disable=SC2016
  as_pg "$BIN/pg_ctl" start -D "$DATA" -l "$DIR/log/postgres.log" -w -t "$TIMEOUT" -s \
    </dev/null >>"$DIR/log/start.log" 2>&1 9>&- || { tail -n 20 "$DIR/log/postgres.log" >&2; die "postgres did not start"; }
}

do_start() {
  TIMEOUT="${PG_START_TIMEOUT:-30}"
  local bin
  for bin in initdb pg_ctl postgres pg_isready psql; do
    [ -x "$BIN/$bin" ] || die "$BIN/$bin is missing: apt-get install -y --no-install-recommends postgresql"
  done
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "no postgres user (PostgreSQL refuses to run as root; Debian's postgresql package makes it)"
  fi
  touch "$DIR/.wharf-pg"
  exec 9>"$DIR/.lock"
  flock 9
  trap 'if [ "$?" -ne 0 ]; then PURGE=0 do_stop; fi' EXIT

  if [ -s "$DIR/env" ] && [ -s "$DIR/port" ]; then
    PG_PORT="$(cat "$DIR/port")"
    if ! { postmaster_pid >/dev/null && ready; }; then
      # State from an earlier start (stopped, or killed: then PostgreSQL replays its WAL). Leftovers
      # of a killed one go first: backends that still hold its shared memory keep a new one out.
      PURGE=0 do_stop
      # postmaster.pid of a killed postmaster names a pid that is not this cluster's (gone, a
      # zombie not yet reaped, or reused): postgres would refuse to start while kill(pid, 0)
      # succeeds, so it goes, with the socket's lock file that names it too. Every process of this
      # cluster is gone by now.
      rm -f "$DATA/postmaster.pid" "$DIR/run/.s.PGSQL.$PG_PORT" "$DIR/run/.s.PGSQL.$PG_PORT.lock"
      launch
    fi
  else
    PURGE=0 do_stop
    rm -rf "$DATA" "$DIR"/{run,log,env,port,pwfile}
    mkdir -p "$DIR"/{run,log}
    [ "$(id -u)" -eq 0 ] && chown postgres: "$DIR" "$DIR/run" "$DIR/log"
    PG_PORT="${PG_PORT:-$(free_port)}"
    local password
    password="$(rand 'A-Za-z0-9' 24)"
    (umask 077; printf '%s\n' "$password" > "$DIR/pwfile")
    [ "$(id -u)" -eq 0 ] && chown postgres: "$DIR/pwfile"
    # --no-sync: initdb's own final fsync of a fresh cluster; the server runs with fsync = on.
    as_pg "$BIN/initdb" -D "$DATA" -U wharf --pwfile="$DIR/pwfile" --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 --no-sync --no-instructions >"$DIR/log/initdb.log" 2>&1 || { cat "$DIR/log/initdb.log" >&2; die "initdb failed"; }
    rm -f "$DIR/pwfile"
    write_conf
    launch
    as_pg "$BIN/psql" -q -X -h "$DIR/run" -p "$PG_PORT" -U wharf -d postgres -v ON_ERROR_STOP=1 \
      -c 'CREATE DATABASE wharf' >>"$DIR/log/start.log" 2>&1 || { tail -n 5 "$DIR/log/start.log" >&2; die "CREATE DATABASE wharf failed"; }
    echo "$PG_PORT" > "$DIR/port"
    # Written last, by rename: a reader that sees DIR/env sees a whole one on a ready cluster.
    printf 'PG_URL=postgres://wharf:%s@127.0.0.1:%s/wharf\nPG_PORT=%s\nPG_DIR=%s\n' \
      "$password" "$PG_PORT" "$PG_PORT" "$DIR" > "$DIR/env.tmp"
    chmod 600 "$DIR/env.tmp"
    mv "$DIR/env.tmp" "$DIR/env"
  fi

  if [ -n "${PG_OWNER_PID:-}" ] && ! { pid="$(cat "$DIR/run/watchdog.pid" 2>/dev/null)" && kill -0 "$pid" 2>/dev/null; }; then
    setsid "$SELF" __watch "$DIR" "$PG_OWNER_PID" </dev/null >/dev/null 2>&1 9>&- &
    echo $! > "$DIR/run/watchdog.pid"
  fi
  cat "$DIR/env"
}

case "$CMD" in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  __watch) do_watch "$DIR" "${2:-}" ;;
esac
