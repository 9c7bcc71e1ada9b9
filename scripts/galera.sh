#!/usr/bin/env bash
# A three-node MariaDB Galera cluster on loopback for the stress tests.
#
#   scripts/galera.sh start    start the cluster (no-op when all three nodes are up and synced)
#   scripts/galera.sh stop     stop every node and delete the cluster's files (no-op when none runs)
#   scripts/galera.sh status   print each node's state; exit 0 only when all three are synced
#
# Nodes listen for SQL on 127.0.0.1:3311, 3312 and 3313 (root, no password), group
# communication on 4561-4563, IST on 4571-4573 and rsync SST on 4451-4453. Their files
# live under $SLOTLOCK_GALERA_DIR (default /tmp/drydock-slotlock-stress/galera), one
# directory per node. Every node is found and stopped through its own pid file: the
# main server on 3306 runs the same binary and is never touched.
#
# Needs `apt-get install -y galera-4 rsync` (the provider library and the SST tool).
set -euo pipefail
# shellcheck source=scripts/lib/mariadb-instance.sh
source "$(dirname "$0")/lib/mariadb-instance.sh"

BASE=${SLOTLOCK_GALERA_DIR:-/tmp/drydock-slotlock-stress/galera}
PROVIDER=/usr/lib/galera/libgalera_smm.so
NODES=(1 2 3)
CLUSTER_ADDRESS='gcomm://127.0.0.1:4561,127.0.0.1:4562,127.0.0.1:4563'

node_dir() { printf '%s/node%s' "$BASE" "$1"; }
sql_port() { printf '%s' $((3310 + $1)); }

# node_state N: the node's wsrep_local_state_comment (Synced, Donor/Desynced, ...) or "down".
node_state() {
  local dir state
  dir=$(node_dir "$1")
  if ! instance_running "$dir"; then
    echo down
    return
  fi
  state=$(instance_client "$dir" -N -e "SHOW GLOBAL STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | cut -f2) || true
  echo "${state:-starting}"
}

cluster_size() {
  instance_client "$(node_dir 1)" -N -e "SHOW GLOBAL STATUS LIKE 'wsrep_cluster_size'" 2>/dev/null | cut -f2
}

all_synced() {
  local n
  for n in "${NODES[@]}"; do [[ $(node_state "$n") == Synced ]] || return 1; done
  [[ $(cluster_size) == 3 ]]
}

any_running() {
  local n
  for n in "${NODES[@]}"; do instance_running "$(node_dir "$n")" && return 0; done
  return 1
}

write_node_config() {
  local n=$1 dir
  dir=$(node_dir "$n")
  instance_write_config "$dir" "$(sql_port "$n")" \
    'binlog_format=ROW' \
    'default_storage_engine=InnoDB' \
    'innodb_autoinc_lock_mode=2' \
    'innodb_flush_log_at_trx_commit=2' \
    'wsrep_on=ON' \
    "wsrep_provider=$PROVIDER" \
    'wsrep_cluster_name=drydock_slotlock_stress' \
    "wsrep_cluster_address=$CLUSTER_ADDRESS" \
    "wsrep_node_name=node$n" \
    "wsrep_node_address=127.0.0.1:$((4560 + n))" \
    "wsrep_node_incoming_address=127.0.0.1:$(sql_port "$n")" \
    "wsrep_provider_options=\"gmcast.listen_addr=tcp://127.0.0.1:$((4560 + n));ist.recv_addr=127.0.0.1:$((4570 + n));gcache.size=32M\"" \
    'wsrep_sst_method=rsync' \
    "wsrep_sst_receive_address=127.0.0.1:$((4450 + n))" \
    'wsrep_slave_threads=2'
}

wait_synced() {
  local n=$1 seconds=$2 i state
  for ((i = 0; i < seconds * 4; i++)); do
    state=$(node_state "$n")
    [[ $state == Synced ]] && return 0
    [[ $state == down ]] && break
    sleep 0.25
  done
  tail -n 60 "$(node_dir "$n")/error.log" >&2 2>/dev/null || true
  die "node$n did not reach Synced within ${seconds}s (state: $(node_state "$n"); log: $(node_dir "$n")/error.log)"
}

start() {
  [[ -f $PROVIDER ]] || die "$PROVIDER is missing: apt-get install -y galera-4 rsync"
  command -v rsync >/dev/null || die "rsync is missing: apt-get install -y rsync"
  if all_synced; then
    log "cluster already up: 3 nodes synced on 3311-3313"
    return 0
  fi
  # A half-started or stale cluster is not worth repairing: start from nothing.
  stop
  mkdir -p "$BASE"
  chmod 755 "$BASE"
  local n started=$SECONDS
  for n in "${NODES[@]}"; do
    write_node_config "$n"
    instance_init "$(node_dir "$n")"
  done
  for n in "${NODES[@]}"; do
    if [[ $n == 1 ]]; then
      instance_launch "$(node_dir "$n")" --wsrep-new-cluster
    else
      instance_launch "$(node_dir "$n")"
    fi
    instance_wait_ready "$(node_dir "$n")" 120
    wait_synced "$n" 120
  done
  [[ $(cluster_size) == 3 ]] || die "cluster size is $(cluster_size), expected 3"
  log "cluster up in $((SECONDS - started))s: 3 nodes synced on 127.0.0.1:3311-3313"
}

stop() {
  local n
  # Joiners first, the node that bootstrapped last.
  for n in 3 2 1; do instance_stop "$(node_dir "$n")"; done
  rm -rf "$BASE"
}

status() {
  local n ok=0
  for n in "${NODES[@]}"; do
    printf 'node%s 127.0.0.1:%s %s\n' "$n" "$(sql_port "$n")" "$(node_state "$n")"
  done
  if all_synced; then
    echo "cluster size 3: up"
  else
    echo "cluster not fully up"
    ok=1
  fi
  return $ok
}

case ${1:-} in
  start) start ;;
  stop)
    if any_running || [[ -d $BASE ]]; then
      stop
      log "cluster stopped"
    fi
    ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
