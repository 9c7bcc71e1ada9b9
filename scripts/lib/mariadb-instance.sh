# shellcheck shell=bash
# Helpers for throwaway mariadbd instances used by the stress tests (sourced by
# scripts/galera.sh and scripts/scratch-mariadb.sh, never run on its own).
#
# An instance is a directory holding its own my.cnf, datadir, socket, pid file and
# logs. Every process is found through that directory (its pid file, checked against
# /proc/PID/cmdline), never by name: the main server on 3306 runs the same binary and
# must never be touched.

MARIADBD=${MARIADBD:-/usr/sbin/mariadbd}

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# instance_pid DIR: prints the pid of DIR's mariadbd when it is running, else nothing.
instance_pid() {
  local dir=$1 file pid
  for file in "$dir/mysqld.pid" "$dir/launcher.pid"; do
    [[ -s $file ]] || continue
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || continue
    # The pid must be a mariadbd started with this instance's my.cnf (pids get reused).
    if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--defaults-file=$dir/my.cnf"; then
      printf '%s\n' "$pid"
      return 0
    fi
  done
  return 0
}

instance_running() { [[ -n $(instance_pid "$1") ]]; }

# pid_alive PID: true while PID exists and is not a zombie (an exited child that no one reaped yet).
pid_alive() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z && $state != X ]]
}

# instance_client DIR ARGS...: runs the mariadb client on DIR's socket as root.
instance_client() {
  local dir=$1
  shift
  mariadb --no-defaults --protocol=socket -S "$dir/mysqld.sock" -uroot "$@"
}

instance_ping() {
  mariadb-admin --no-defaults --protocol=socket -S "$1/mysqld.sock" -uroot --connect-timeout=2 ping >/dev/null 2>&1
}

# instance_write_config DIR PORT [EXTRA_LINE...]: writes DIR/my.cnf (nothing from /etc/mysql is read).
instance_write_config() {
  local dir=$1 port=$2
  shift 2
  mkdir -p "$dir"
  {
    printf '%s\n' \
      '[mysqld]' \
      "datadir=$dir/data" \
      "socket=$dir/mysqld.sock" \
      "pid-file=$dir/mysqld.pid" \
      "log-error=$dir/error.log" \
      "port=$port" \
      'bind-address=127.0.0.1' \
      'skip-name-resolve' \
      'character-set-server=utf8mb4' \
      'collation-server=utf8mb4_general_ci' \
      'performance_schema=OFF' \
      'innodb_buffer_pool_size=64M' \
      'innodb_log_file_size=16M' \
      'max_connections=300'
    local line
    for line in "$@"; do printf '%s\n' "$line"; done
  } >"$dir/my.cnf"
  chown mysql:mysql "$dir"
}

# instance_init DIR: creates the datadir with mariadb-install-db unless it exists.
# root may log in over TCP from 127.0.0.1 without a password, like the main server.
instance_init() {
  local dir=$1
  [[ -d $dir/data/mysql ]] && return 0
  rm -rf "$dir/data"
  if ! mariadb-install-db --defaults-file="$dir/my.cnf" --user=mysql \
    --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1; then
    cat "$dir/install.log" >&2
    die "mariadb-install-db failed for $dir"
  fi
}

# instance_launch DIR [MARIADBD_ARG...]: starts DIR's mariadbd in the background (own session).
instance_launch() {
  local dir=$1
  shift
  instance_running "$dir" && return 0
  rm -f "$dir/mysqld.pid" "$dir/launcher.pid"
  setsid "$MARIADBD" --defaults-file="$dir/my.cnf" --user=mysql "$@" \
    >>"$dir/mariadbd.out" 2>&1 </dev/null &
  echo $! >"$dir/launcher.pid"
}

# instance_wait_ready DIR SECONDS: waits until DIR's server answers; fails if it died or timed out.
instance_wait_ready() {
  local dir=$1 seconds=$2 i
  for ((i = 0; i < seconds * 4; i++)); do
    instance_ping "$dir" && return 0
    if ! instance_running "$dir"; then
      tail -n 40 "$dir/error.log" >&2 2>/dev/null || true
      die "mariadbd of $dir exited during start-up (log above: $dir/error.log)"
    fi
    sleep 0.25
  done
  tail -n 40 "$dir/error.log" >&2 2>/dev/null || true
  die "mariadbd of $dir did not answer within ${seconds}s"
}

# instance_stop DIR [SIGNAL]: stops DIR's mariadbd (TERM is a clean shutdown; KILL a crash)
# and waits for it to exit; escalates to KILL after 60 s.
instance_stop() {
  local dir=$1 signal=${2:-TERM} pid i
  pid=$(instance_pid "$dir")
  [[ -z $pid ]] && return 0
  kill -s "$signal" "$pid" 2>/dev/null || true
  for ((i = 0; i < 240; i++)); do
    pid_alive "$pid" || break
    sleep 0.25
  done
  if pid_alive "$pid"; then
    log "mariadbd $pid of $dir ignored SIG$signal for 60 s: SIGKILL"
    kill -s KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      pid_alive "$pid" || break
      sleep 0.1
    done
  fi
  rm -f "$dir/mysqld.pid" "$dir/launcher.pid" "$dir/mysqld.sock"
}
