#!/usr/bin/env bash
# A throwaway MariaDB server for the fault tests, so that shutting a server down under
# a live DataSource never disturbs the main one on 3306 (nor anyone's tests on it).
#
#   scripts/scratch-mariadb.sh start     start it (creates the datadir the first time; keeps it after)
#   scripts/scratch-mariadb.sh stop      clean shutdown (SIGTERM, as `mariadb-admin shutdown`); data kept
#   scripts/scratch-mariadb.sh crash     SIGKILL, as a power cut; data kept (InnoDB recovers on start)
#   scripts/scratch-mariadb.sh destroy   stop it and delete its files
#   scripts/scratch-mariadb.sh status    exit 0 when it answers
#
# It listens on 127.0.0.1:${SLOTLOCK_SCRATCH_PORT:-3320} (root, no password), with its
# files under $SLOTLOCK_SCRATCH_DIR (default /tmp/drydock-slotlock-stress/scratch), and
# is found and stopped through its own pid file only.
set -euo pipefail
# shellcheck source=scripts/lib/mariadb-instance.sh
source "$(dirname "$0")/lib/mariadb-instance.sh"

DIR=${SLOTLOCK_SCRATCH_DIR:-/tmp/drydock-slotlock-stress/scratch}
PORT=${SLOTLOCK_SCRATCH_PORT:-3320}

start() {
  if instance_running "$DIR" && instance_ping "$DIR"; then return 0; fi
  mkdir -p "$(dirname "$DIR")"
  chmod 755 "$(dirname "$DIR")"
  # Durable commits (the default), so that a crash loses no committed lock.
  instance_write_config "$DIR" "$PORT" 'innodb_flush_log_at_trx_commit=1' 'skip-log-bin'
  instance_init "$DIR"
  instance_launch "$DIR"
  instance_wait_ready "$DIR" 120
}

case ${1:-} in
  start) start ;;
  stop) instance_stop "$DIR" TERM ;;
  crash) instance_stop "$DIR" KILL ;;
  destroy)
    instance_stop "$DIR" TERM
    rm -rf "$DIR"
    ;;
  status)
    if instance_running "$DIR" && instance_ping "$DIR"; then
      echo "scratch mariadb up on 127.0.0.1:$PORT"
    else
      echo "scratch mariadb down"
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 start|stop|crash|destroy|status" >&2
    exit 2
    ;;
esac
